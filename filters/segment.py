"""Chinese word segmentation: jieba's words, computed by the fastest kernel that reproduces them.

Pure text logic: no Dask, no I/O except loading a dictionary (and an optional
user dictionary) the first time a ``Segmenter`` is used in a process.

Accuracy and cost (``python bench/cws_pku.py``, SIGHAN 2005 PKU test set,
jieba 0.42.1): F1 0.836 with ``HMM=False`` vs 0.818 with ``HMM=True``, so HMM
is off by default. ``Segmenter`` returns exactly the words of
``jieba.lcut(text, HMM=hmm)`` minus whitespace-only tokens.

Kernels: with HMM off and no user dictionary, rjieba (Python bindings of
jieba-rs, the Rust port of jieba with the same dictionary) gives jieba's words
at about a tenth of the CPU and loads its dictionary in ~0.06 s instead of
~1 s (``tests/test_segment.py`` checks the words against jieba on every
fixture text). jieba itself stays the reference and the kernel for HMM on
(rjieba's HMM differs on ~6 % of documents) and for user dictionaries.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence

__all__ = ["Segmenter", "kernel_name", "sighan_score"]

# jieba logs "Building prefix dict ..." at DEBUG through its own stderr handler.
logging.getLogger("jieba").setLevel(logging.WARNING)

Cut = Callable[[str], list[str]]

# One kernel per (process, hmm, user dictionary). Segmenter instances that are
# re-created or unpickled in a worker share it, so the dictionary load happens
# once per process and the kernel is never pickled with a task. Built under
# _LOCK and published in _KERNELS only once fully loaded (user dictionary
# included): tasks on a worker's threads share it, and cutting only reads it.
_KERNELS: dict[tuple[bool, str | None], Cut] = {}
_LOCK = threading.Lock()


def kernel_name(hmm: bool, user_dict: str | None) -> str:
    """Which implementation computes the words: ``"rjieba"`` or ``"jieba"``."""
    return "rjieba" if not hmm and user_dict is None else "jieba"


def _build(hmm: bool, user_dict: str | None) -> Cut:
    """Load the kernel for ``(hmm, user_dict)``: a function from a text to its tokens (whitespace included)."""
    if kernel_name(hmm, user_dict) == "rjieba":
        import rjieba  # imported here: only processes that segment pay for it

        return functools.partial(rjieba.Jieba().cut, hmm=False)
    import jieba

    tok = jieba.Tokenizer()
    tok.initialize()
    if user_dict is not None:
        tok.load_userdict(user_dict)
    return functools.partial(tok.lcut, HMM=hmm)


def _kernel(key: tuple[bool, str | None]) -> Cut:
    """The process-wide kernel for ``key``, built on first use (once, even when threads race)."""
    cut = _KERNELS.get(key)
    if cut is None:
        with _LOCK:
            cut = _KERNELS.get(key)
            if cut is None:
                cut = _KERNELS[key] = _build(*key)
    return cut


class Segmenter:
    """Chinese word segmentation with jieba's words; one kernel per worker process.

    ``hmm`` enables jieba's HMM for unknown words (off by default: it scores
    lower on PKU). ``user_dict`` is a jieba user dictionary file (one
    ``word [freq] [tag]`` per line), loaded once after jieba's own dictionary.
    Nothing is loaded until the first call to :meth:`segment` or :meth:`words`.
    """

    def __init__(self, hmm: bool = False, user_dict: str | os.PathLike[str] | None = None):
        self.hmm = bool(hmm)
        self.user_dict = None if user_dict is None else os.path.abspath(os.fspath(user_dict))

    def __repr__(self) -> str:
        return f"Segmenter(hmm={self.hmm!r}, user_dict={self.user_dict!r})"

    @property
    def kernel(self) -> str:
        """The implementation that computes the words (``"rjieba"`` or ``"jieba"``)."""
        return kernel_name(self.hmm, self.user_dict)

    def load(self) -> None:
        """Load the dictionary (and the user dictionary) now (otherwise on first use)."""
        _kernel((self.hmm, self.user_dict))

    def segment(self, texts: Sequence[str]) -> list[str]:
        """For each text, its words joined by single spaces.

        Whitespace-only tokens (jieba yields each space, tab, newline or
        ``\\r\\n`` as a token of its own) are dropped, so the words
        concatenated give the text with its whitespace removed.
        """
        cut = _kernel((self.hmm, self.user_dict))
        join = " ".join
        return [join([w for w in cut(t) if not w.isspace()]) for t in texts]

    def words(self, text: str) -> list[str]:
        """The words of one text, whitespace-only tokens dropped."""
        return [w for w in _kernel((self.hmm, self.user_dict))(text) if not w.isspace()]


def sighan_score(
    predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]
) -> dict[str, float]:
    """SIGHAN bakeoff word scores of ``predicted`` against ``gold`` segmentations.

    Both are sequences of lines, each a sequence of words. A predicted word is
    correct when its character span (start, end) in the line's non-whitespace
    text equals a gold word's span. Returns counts (``correct``, ``predicted``,
    ``gold``) and ``precision`` = correct/predicted, ``recall`` = correct/gold,
    ``f1``. Raises ``ValueError`` if line counts or line texts differ.
    """
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predicted lines but {len(gold)} gold lines")
    correct = n_pred = n_gold = 0
    for i, (pw, gw) in enumerate(zip(predicted, gold)):
        if "".join(pw) != "".join(gw):
            raise ValueError(f"line {i}: predicted words do not spell the gold text")
        correct += len(_spans(pw) & _spans(gw))
        n_pred += len(pw)
        n_gold += len(gw)
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_gold if n_gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"correct": correct, "predicted": n_pred, "gold": n_gold,
            "precision": p, "recall": r, "f1": f1}


def _spans(words: Sequence[str]) -> set[tuple[int, int]]:
    spans, start = set(), 0
    for w in words:
        end = start + len(w)
        spans.add((start, end))
        start = end
    return spans
