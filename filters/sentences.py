"""Sentence counting for C4's five-sentence minimum, without ending sentences at abbreviations or initials.

C4 (Raffel et al. 2020, JMLR 21(140), section 2.2) counts sentences with NLTK's Punkt tokenizer. Punkt learns
abbreviations from a corpus; this module keeps the two decisions that matter for counting, as fixed rules:

* a run of ``. ! ?`` (with closing quotes or brackets) followed by whitespace or the end of the text is a candidate
  sentence end;
* a candidate is *not* a sentence end when the word it ends is an abbreviation: a title or a month from
  :data:`ABBREVIATIONS` ("Mr.", "Nov."), a single letter ("J." in "J. R. R. Tolkien") or dotted letters ("U.S.",
  "e.g."); or when the next word starts with a lower-case letter or a digit (Punkt's orthographic evidence that
  the sentence goes on: "approx. 5", "etc. and").

Counting is the only use: an abbreviation that really ends a sentence ("... moved to the U.S. Then") counts one
sentence fewer, the same choice Punkt makes for a known abbreviation followed by a capitalised word.
"""
from __future__ import annotations

import re

__all__ = ["ABBREVIATIONS", "count_sentences"]

#: Lower-cased abbreviations (without the final ".") after which a "." does not end a sentence: English titles and
#: month names, as in the abbreviation lists Punkt learns from news text.
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "hon", "gen", "col", "maj", "capt", "lt",
    "sgt", "cmdr", "adm", "gov", "sen", "rep", "pres", "messrs", "mme", "mlle",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "vs", "vol", "fig", "approx", "dept",
})

# candidate end: the end marks (group 1) and closing quotes/brackets, then whitespace or the end. The word it ends is
# the run of non-space characters before it, looked up only when the marks are one "." and the next word does not
# already continue the sentence: scanning for the marks alone is about 10x faster than matching the word with a lazy
# prefix at every position (bench/choices.md), and finds the same candidates: a match cannot start in white space,
# and the first mark of a word from which one matches is where the lazy prefix stops.
_CANDIDATE = re.compile(r"([.!?]+)[\"'”’)\]]*(?=\s|$)")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")  # "J", "U.S", "e.g" (the last "." is the candidate's)
_NEXT_WORD = re.compile(r"\s+[\"'“‘(\[]*(\S)")


def _is_abbreviation(word: str) -> bool:
    word = word.lstrip("\"'“‘([")
    return word.lower() in ABBREVIATIONS or (len(word) <= 5 and _INITIALS.fullmatch(word) is not None
                                             and (len(word) == 1 or "." in word))


def _ends_abbreviation(text: str, word_from: int, end: int) -> bool:
    """Whether the run of non-space characters of ``text[word_from:end]`` that ends at ``end`` is an abbreviation
    (no run: False). ``str.isspace`` and ``str.rsplit()`` use the white space of ``\\s``."""
    if end == word_from or text[end - 1].isspace():
        return False
    return _is_abbreviation(text[word_from:end].rsplit(None, 1)[-1])


def count_sentences(text: str) -> int:
    """Sentences of ``text``: candidate ends that are not abbreviations, plus a final unterminated sentence."""
    n = 0
    pos = last_end = 0
    for m in _CANDIDATE.finditer(text):
        word_from, pos = pos, m.end()
        nxt = _NEXT_WORD.match(text, pos)
        if nxt and (nxt.group(1).islower() or nxt.group(1).isdigit()):
            continue
        if m.group(1) == "." and _ends_abbreviation(text, word_from, m.start()):
            continue
        n += 1
        last_end = pos
    return n + (1 if text[last_end:].strip() else 0)
