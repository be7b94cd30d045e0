"""Chinese word segmentation with jieba.

Pure text logic: no Dask, no I/O except jieba loading its dictionary (and an
optional user dictionary) the first time a ``Segmenter`` is used in a process.

Accuracy and cost (``python bench/cws_pku.py``, SIGHAN 2005 PKU test set,
jieba 0.42.1): F1 0.836 with ``HMM=False`` vs 0.818 with ``HMM=True``, so HMM
is off by default. ``Segmenter`` returns exactly the words of
``jieba.lcut(text, HMM=hmm)`` minus whitespace-only tokens.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import jieba

__all__ = ["Segmenter", "sighan_score"]

# jieba logs "Building prefix dict ..." at DEBUG through its own stderr handler.
logging.getLogger("jieba").setLevel(logging.WARNING)

# One jieba.Tokenizer per (process, user dictionary). Segmenter instances that
# are re-created or unpickled in a worker share it, so the ~1 s dictionary load
# happens once per process and the tokenizer is never pickled with a task.
# Created and initialised under _LOCK, and marked ready only once its user
# dictionary is in: tasks on a worker's threads share it, and `cut` only reads
# its dictionary.
_TOKENIZERS: dict[str | None, jieba.Tokenizer] = {}
_LOCK = threading.Lock()


def _shared_tokenizer(user_dict: str | None) -> jieba.Tokenizer:
    """The process-wide tokenizer for ``user_dict``; created, not initialised."""
    with _LOCK:
        tok = _TOKENIZERS.get(user_dict)
        if tok is None:
            tok = _TOKENIZERS[user_dict] = jieba.Tokenizer()
        return tok


def _initialise(tok: jieba.Tokenizer, user_dict: str | None) -> None:
    """Load jieba's dictionary (and the user dictionary) into ``tok`` once."""
    with _LOCK:
        if getattr(tok, "_corpusslim_ready", False):
            return
        tok.initialize()
        if user_dict is not None:
            tok.load_userdict(user_dict)
        # Set last: `initialized` turns True before the user dictionary is in.
        tok._corpusslim_ready = True


class Segmenter:
    """Chinese word segmentation with jieba; one instance per worker process.

    ``hmm`` enables jieba's HMM for unknown words (off by default: it scores
    lower on PKU). ``user_dict`` is a jieba user dictionary file (one
    ``word [freq] [tag]`` per line), loaded once after jieba's own dictionary.
    Nothing is loaded until the first call to :meth:`segment` or :meth:`words`.
    """

    def __init__(self, hmm: bool = False, user_dict: str | os.PathLike[str] | None = None):
        self.hmm = bool(hmm)
        self.user_dict = None if user_dict is None else os.path.abspath(os.fspath(user_dict))
        self._tokenizer = _shared_tokenizer(self.user_dict)

    def __repr__(self) -> str:
        return f"Segmenter(hmm={self.hmm!r}, user_dict={self.user_dict!r})"

    # A jieba.Tokenizer holds an RLock and a large dictionary: never pickle it.
    def __getstate__(self) -> dict:
        return {"hmm": self.hmm, "user_dict": self.user_dict}

    def __setstate__(self, state: dict) -> None:
        self.hmm = state["hmm"]
        self.user_dict = state["user_dict"]
        self._tokenizer = _shared_tokenizer(self.user_dict)

    def _cut(self):
        """The bound ``cut`` of an initialised tokenizer."""
        tok = self._tokenizer
        if not getattr(tok, "_corpusslim_ready", False):
            _initialise(tok, self.user_dict)
        return tok.cut

    def load(self) -> None:
        """Load jieba's dictionary (and the user dictionary) now (otherwise on first use)."""
        self._cut()

    def segment(self, texts: Sequence[str]) -> list[str]:
        """For each text, its words joined by single spaces.

        Whitespace-only tokens (jieba yields each space, tab, newline or
        ``\\r\\n`` as a token of its own) are dropped, so the words
        concatenated give the text with its whitespace removed.
        """
        cut = self._cut()
        hmm = self.hmm
        join = " ".join
        return [join([w for w in cut(t, HMM=hmm) if not w.isspace()]) for t in texts]

    def words(self, text: str) -> list[str]:
        """The words of one text, whitespace-only tokens dropped."""
        return [w for w in self._cut()(text, HMM=self.hmm) if not w.isspace()]


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
