"""Heuristic document-quality rules: Gopher, C4, FineWeb, and rules for Chinese.

Pure text logic: no Dask, no file I/O.  The quality stage calls

* :func:`document_stats` once per document -- the *score*: a flat dict of
  floats (one pass over the text), meant to be stored as annotation columns;
* :func:`first_failure` (the ``quality_reason``) and, for reporting,
  :func:`all_failures` -- the *decision*, which reads only that dict and the
  thresholds in :class:`QualityConfig`.

So every threshold can be re-tuned without recomputing statistics.  The only
config values that shape a statistic itself are the "short line" and
"headline" lengths (``fineweb.short_line_chars``, ``chinese.short_line_chars``,
``chinese.headline_chars``): pass the config to :func:`document_stats` if you
change them (and a C4 bad-word list, passed as ``bad_words``).  The stats record the lengths they
were computed with, and the decision refuses a config that disagrees rather
than silently deciding on a different definition.

Rule sets, applicability and order
----------------------------------
Chinese documents (``lang`` "zh", "zh-CN", "zh_Hant" ...; see
:func:`is_chinese`) get the ``chinese`` rule set *instead of* the word-based
sets: Gopher, C4 and FineWeb count whitespace-separated words and expect
lines to end in ASCII punctuation, so on unspaced Chinese text they fail
almost every document (``gopher_min_words``, ``gopher_mean_word_length``)
for reasons that say nothing about its quality.  Every other document,
``lang=None`` included, gets gopher_quality, gopher_repetition, c4 and
fineweb.  Other unspaced scripts (ja, th, ...) get no special treatment:
route them elsewhere upstream or disable the word-based sets.

:func:`first_failure` checks rules in the fixed order of the :data:`RULES`
table (gopher_quality, gopher_repetition, c4, fineweb; or the chinese rules),
and returns the first failing rule's code.

A ``min`` rule fails when ``stat < threshold``, a ``max`` rule when
``stat > threshold``, so a value exactly at the threshold passes (Gopher's
"fewer than" / "more than"; the FineWeb paper writes its removal conditions
with <= / >=, which differs only at the exact boundary).  A ``flag`` rule
fails when its statistic is non-zero and its switch is on.

Overlaps worth knowing (they matter for "removed by this rule alone"): with
the default thresholds ``gopher_dup_line_chars`` (0.20) can never fail alone,
because ``fineweb_dup_line_chars`` tests the same statistic at 0.10; and
``gopher_dup_paragraph_chars`` practically never, because every line of a
repeated paragraph is a repeated line.

Tokenisation of space-delimited text
------------------------------------
* *lines*: ``text.split("\\n")``, each stripped of surrounding whitespace (so
  ``\\r\\n`` works); blank lines are left out of every line statistic (else
  every blank-line-separated article would have "duplicate lines").
* *paragraphs*: maximal runs of non-blank lines, separated by blank lines.
* *words*: ``text.split()`` (any Unicode whitespace), as in Gopher.  These raw
  tokens give the word count, the symbol-to-word ratios, the newline-to-word
  ratio and the alphabetic test (does the token contain a letter of any
  script: ``str.isalpha`` on some character).  For mean word length, stop
  words and n-grams each token is lower-cased and stripped of leading and
  trailing punctuation (ASCII punctuation, typographic quotes, dashes,
  ellipsis, CJK brackets); tokens that are only punctuation are dropped there.
* n-gram *characters* are the characters of its normalised words (joining
  spaces not counted); the n-gram fractions divide by the characters of all
  normalised words.  Line/paragraph character fractions divide by the
  characters of all stripped lines/paragraphs.
* a *duplicate* line or paragraph is one that already occurred earlier in the
  document (the first occurrence is not counted).
* duplicate n-gram character fraction (n = 5..10): the fraction of word
  characters covered by occurrences of n-grams that occur more than once,
  overlapping occurrences counted once -- Gopher's "characters contained
  within all duplicate n-grams" without double-counting overlaps.
* top n-gram character fraction (n = 2..4): count x characters of the most
  frequent n-gram (the longest one on a tie) over all word characters; 0 when
  no n-gram occurs twice (nothing is repeated).

* sentences (C4's minimum): counted per non-blank line by
  :func:`corpusslim.filters.sentences.count_sentences`, which does not end a
  sentence at an abbreviation or an initial ("U.S.", "Nov.", "J. R. R.").

Line rules run before this module judges a page
-----------------------------------------------
C4's line rules (terminal punctuation, "javascript", policy notices, lines of
fewer than 3 words) and the Chinese navigation/boilerplate line rules remove
*lines*, not pages: they live in :mod:`corpusslim.filters.lines` and run in the
``lines`` stage, before dedup.  The page rules here judge the cleaned text, as
C4 does ("discarded any page with fewer than 5 sentences" counts the retained
lines).  Without a ``lines`` stage they judge the text as it is.

Where CorpusSlim reads the papers differently from datatrove (on purpose)
-------------------------------------------------------------------------
* Words are whitespace tokens, and a token without a letter (a lone "-", "&",
  "|") is not an alphabetic word (Gopher: "contain at least one alphabetic
  character"); datatrove's spaCy/NLTK tokens count every punctuation mark as
  a word, which fails ordinary prose on ``gopher_alpha_words``.
* "*" starts a bullet line (Gopher's "bullet point"), as "-" and "•" do.
* A page with a "{" anywhere is dropped (C4: "removed any pages that
  contained a curly bracket"); datatrove looks only at the lines it kept.
* FineWeb's line-end and short-line tests see stripped, non-blank lines, so a
  trailing space or a blank line between paragraphs does not fail a line.
* ``fineweb_dup_line_chars`` uses the paper's 0.1; datatrove's
  FineWebQualityFilter defaults to 0.01.

Chinese documents: see :class:`ChineseConfig`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import accumulate, repeat
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from corpusslim.filters.lines import zh_has_sentence_end
from corpusslim.filters.sentences import count_sentences

__all__ = [
    "C4Config",
    "ChineseConfig",
    "FineWebConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "QualityConfig",
    "RULES",
    "Rule",
    "STAT_NAMES",
    "all_failures",
    "bad_words_pattern",
    "document_stats",
    "first_failure",
    "is_chinese",
    "reason_codes",
]

# --------------------------------------------------------------------------
# Citations
# --------------------------------------------------------------------------
GOPHER = (
    "Rae et al. 2021, 'Scaling Language Models: Methods, Analysis & Insights from "
    "Training Gopher', arXiv:2112.11446, appendix A.1.1 (quality filters)"
)
GOPHER_REP = (
    "Rae et al. 2021, 'Scaling Language Models: ... Training Gopher', arXiv:2112.11446, "
    "appendix A.1.1, table A1 (repetition removal)"
)
C4 = (
    "Raffel et al. 2020, 'Exploring the Limits of Transfer Learning with a Unified "
    "Text-to-Text Transformer', JMLR 21(140), section 2.2 (C4)"
)
C4_BADWORDS = C4 + "; the word list is the user's (C4 used the LDNOOBW 'List of Dirty, Naughty, ... Bad Words')"
FINEWEB = (
    "Penedo et al. 2024, 'The FineWeb Datasets: Decanting the Web for the Finest Text "
    "Data at Scale', arXiv:2406.17557, section 3 (FineWeb custom filters)"
)
FINEWEB_CODE = (
    "Penedo et al. 2024, arXiv:2406.17557: newline-to-word ratio 0.3 as set in the "
    "FineWeb quality filter of datatrove, the paper's released pipeline code"
)
ZH_OURS = "CorpusSlim (ours): measured on zh_wiki, zh_web_pages, zh_hotel_reviews; see ChineseConfig"
ZH_GOPHER = "CorpusSlim (ours), carrying over " + GOPHER_REP + " to Chinese lines"
ZH_GOPHER_WORDS = "CorpusSlim (ours), carrying over " + GOPHER + " (50-word minimum) to jieba words"

# --------------------------------------------------------------------------
# Fixed parts of the statistics' definitions
# --------------------------------------------------------------------------
#: Gopher's stop words; a document needs at least two *distinct* ones.
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
#: A line starting with one of these characters is a bullet-point line.
BULLET_CHARS = frozenset("•‣◦⁃∙▪▫●○■□◆◇►▸▹‐‑–—-*·")
#: Stripped from both ends of a token before word-length, stop-word and n-gram statistics.
WORD_STRIP = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "“”‘’«»„‚‹›「」『』（）【】《》〈〉…–—·•¡¿，。！？；："
)
ELLIPSES = ("...", "…")
#: FineWeb's line-end characters (. ' " ! ?) plus the typographic closing quotes.
FINEWEB_END_MARKS = (".", "!", "?", '"', "'", "”", "’")
# Tokens (runs of non-space) with no letter: every character white-space-free and not a letter ([^\W\d_]).
_NO_LETTER_TOKENS = re.compile(r"(?<!\S)(?:[^\s\w]|[\d_])+(?!\S)").findall
# CJK unified ideographs: main block, extension A, compatibility block, extensions B-F
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
# a seg token that is a word: contains a letter, digit or ideograph (not bare punctuation)
_WORD_TOKEN = re.compile(r"\S*\w\S*")

TOP_NGRAM_NS = (2, 3, 4)
DUP_NGRAM_NS = (5, 6, 7, 8, 9, 10)

# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]

_MODEL_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True)


class _Section(BaseModel):
    model_config = _MODEL_CONFIG

    enabled: bool = True


class GopherQualityConfig(_Section):
    """Gopher quality filter: Rae et al. 2021, appendix A.1.1."""

    min_words: NonNegInt = 50  # Rae et al. 2021 A.1.1: remove docs with fewer than 50 words
    max_words: NonNegInt = 100_000  # Rae et al. 2021 A.1.1: ... or more than 100,000 words
    min_mean_word_length: NonNegFloat = 3.0  # Rae et al. 2021 A.1.1: mean word length outside 3..10
    max_mean_word_length: NonNegFloat = 10.0  # Rae et al. 2021 A.1.1: mean word length outside 3..10
    max_hash_ratio: NonNegFloat = 0.1  # Rae et al. 2021 A.1.1: symbol-to-word ratio > 0.1 for "#"
    max_ellipsis_ratio: NonNegFloat = 0.1  # Rae et al. 2021 A.1.1: ... or for the ellipsis
    max_bullet_lines: Fraction = 0.9  # Rae et al. 2021 A.1.1: > 90% of lines start with a bullet point
    max_ellipsis_lines: Fraction = 0.3  # Rae et al. 2021 A.1.1: > 30% of lines end with an ellipsis
    min_alpha_words: Fraction = 0.8  # Rae et al. 2021 A.1.1: < 80% of words contain an alphabetic char
    min_stop_words: NonNegInt = 2  # Rae et al. 2021 A.1.1: at least two of the eight stop words

    @model_validator(mode="after")
    def _ranges(self) -> GopherQualityConfig:
        if self.min_words > self.max_words:
            raise ValueError("min_words must be <= max_words")
        if self.min_mean_word_length > self.max_mean_word_length:
            raise ValueError("min_mean_word_length must be <= max_mean_word_length")
        return self


class GopherRepetitionConfig(_Section):
    """Gopher repetition removal: Rae et al. 2021, appendix A.1.1, table A1."""

    max_dup_line_frac: Fraction = 0.30  # Rae et al. 2021 table A1: duplicate line fraction
    max_dup_para_frac: Fraction = 0.30  # Rae et al. 2021 table A1: duplicate paragraph fraction
    max_dup_line_char_frac: Fraction = 0.20  # Rae et al. 2021 table A1: duplicate line character fraction
    max_dup_para_char_frac: Fraction = 0.20  # Rae et al. 2021 table A1: duplicate paragraph character fraction
    max_top_2gram_char_frac: Fraction = 0.20  # Rae et al. 2021 table A1: top 2-gram character fraction
    max_top_3gram_char_frac: Fraction = 0.18  # Rae et al. 2021 table A1: top 3-gram character fraction
    max_top_4gram_char_frac: Fraction = 0.16  # Rae et al. 2021 table A1: top 4-gram character fraction
    max_dup_5gram_char_frac: Fraction = 0.15  # Rae et al. 2021 table A1: duplicate 5-gram character fraction
    max_dup_6gram_char_frac: Fraction = 0.14  # Rae et al. 2021 table A1: duplicate 6-gram character fraction
    max_dup_7gram_char_frac: Fraction = 0.13  # Rae et al. 2021 table A1: duplicate 7-gram character fraction
    max_dup_8gram_char_frac: Fraction = 0.12  # Rae et al. 2021 table A1: duplicate 8-gram character fraction
    max_dup_9gram_char_frac: Fraction = 0.11  # Rae et al. 2021 table A1: duplicate 9-gram character fraction
    max_dup_10gram_char_frac: Fraction = 0.10  # Rae et al. 2021 table A1: duplicate 10-gram character fraction


class C4Config(_Section):
    """C4's page rules (Raffel et al. 2020, JMLR 21(140), section 2.2), judged on the cleaned text.

    C4's line rules remove lines, in the ``lines`` stage (:mod:`corpusslim.filters.lines`); what is left here
    drops whole pages:

    * ``c4_lorem_ipsum`` -- "removed any page where the phrase 'lorem ipsum' appeared" (case-insensitive).
    * ``c4_curly_bracket`` -- "removed any pages that contained a curly bracket": a "{" anywhere in the text.
    * ``c4_bad_words`` -- "removed any page that contained any word on the 'List of Dirty, Naughty, Obscene or
      Otherwise Bad Words'": only when the quality stage is given a word list (``bad_words_file``); a word matches
      case-insensitively between non-word characters, as in the C4 reference code.  No list ships with CorpusSlim.
    * ``c4_min_sentences`` -- "discarded any page with fewer than 5 sentences" (the TFDS code uses 3; we follow
      the paper, as datatrove does), counted per non-blank line with abbreviations and initials not ending a
      sentence (:mod:`corpusslim.filters.sentences`; C4 uses NLTK's Punkt).
    """

    lorem_ipsum: bool = True  # Raffel et al. 2020 s2.2: remove any page containing "lorem ipsum"
    curly_bracket: bool = True  # Raffel et al. 2020 s2.2: remove any page containing a curly bracket
    bad_words: bool = True  # Raffel et al. 2020 s2.2: remove any page with a listed bad word (needs a word list)
    min_sentences: NonNegInt = 5  # Raffel et al. 2020 s2.2: discard pages with fewer than 5 sentences (TFDS code: 3)


class FineWebConfig(_Section):
    """FineWeb custom filters: Penedo et al. 2024, section 3."""

    min_line_punct_frac: Fraction = 0.12  # Penedo et al. 2024: remove if lines ending in punctuation <= 0.12
    max_short_line_frac: Fraction = 0.67  # Penedo et al. 2024: remove if lines shorter than 30 chars >= 0.67
    short_line_chars: PosInt = 30  # Penedo et al. 2024: a short line has <= 30 characters (defines a stat)
    max_dup_line_char_frac: Fraction = 0.10  # Penedo et al. 2024: remove if chars in duplicated lines >= 0.1
    # (datatrove's FineWebQualityFilter defaults to 0.01; the paper's 0.1 is used)
    max_newline_word_ratio: NonNegFloat = 0.3  # datatrove FineWebQualityFilter new_line_ratio=0.3 (FineWeb code)


class ChineseConfig(_Section):
    """Rules for Chinese documents, applied instead of the word-based rule sets.

    No paper publishes document-level thresholds for these, so the values are
    ours.  They were chosen by measuring three real sets: zh_wiki (1,104 clean
    Wikipedia paragraphs; should pass), zh_web_pages (66 news/forum pages with
    navigation and boilerplate; should fail) and zh_hotel_reviews (7,765
    short, clean reviews); plus, as a check for false positives on clean
    multi-line text, the PKU People's Daily test text cut into 15-line chunks.
    Words come from ``seg`` (jieba words joined by single spaces); a token
    without any letter, digit or ideograph is punctuation, not a word.  When
    ``seg`` is None the word count falls back to the number of CJK characters
    (lenient: a jieba word averages about 1.5 ideographs; medians 1.52 on
    zh_wiki, 1.60 on hotel reviews).

    * ``zh_min_chars`` (80 non-whitespace characters): a length floor that needs
      no segmentation; about what 50 jieba words take (hotel reviews: median
      1.9 characters per word including punctuation).
    * ``zh_cjk_ratio`` (0.3): CJK ideographs over non-whitespace characters.
      Catches mislabelled documents, code, tables and Latin menus.  It does not
      separate web pages from wiki (medians 0.81 and 0.80); Wikipedia articles
      on software or bands go down to 0.2-0.5 with their Latin names, so the
      floor is low: 0.3 removes 0.1% of zh_wiki (0.5 would remove 1.5%).
    * ``zh_line_punct`` (0.5): fraction of non-blank lines that *contain* a
      Chinese or ASCII sentence end (。！？；… ! ? ; or a final ".", tested
      after NFKC, so full-width and small-form variants such as "﹖" U+FE56
      count), among the lines that are not *headline-like*: a line without a
      sentence end of at most ``headline_chars`` (30) characters does not count
      either way, so a news article keeps its title, subheadings and the
      "related stories" headlines under it without failing.  We test
      "contains", not "ends with" as C4/FineWeb do: 8-12% of zh_wiki
      paragraphs are one line ending in a colon or a trailing section title
      (CMRC contexts are cut that way), and "ends with" would remove all of
      them, and 22% of hotel reviews, whereas it removes the same share of
      web pages (98.5% below 0.5 either way).  With "contains": zh_wiki 0.1%
      removed, zh_web_pages 98.5%, hotel reviews 11% (a few words or commas
      only), PKU news chunks 8.5% (runs of headlines).
    * ``zh_dup_lines`` (0.3): fraction of non-blank lines repeating an earlier
      line, Gopher's duplicate-line fraction and threshold (Rae et al. 2021,
      table A1).  Fails 23% of zh_web_pages (repeated menus), no wiki/review.
    * ``zh_boilerplate_lines`` (0.4): fraction of non-blank lines that are
      short (at most ``short_line_chars`` = 10 characters) and contain no
      sentence end: menu items, channel names, buttons, breadcrumbs, the
      navigation of zh_web_pages (median 0.57 there, 0 in wiki and reviews).
      At 0.4 it fails 85% of web pages and 3% of PKU news chunks (0.3 would
      fail 6% of those, mostly headline-heavy chunks).
    * ``zh_min_words`` (50): Gopher's 50-word minimum carried over to jieba
      words.

    Hotel reviews: we decided that short reviews do *not* pass.  They are
    clean text, but a 20-word review is as short a document as a 20-word
    English review, which Gopher's 50-word minimum removes; treating both
    languages alike matters more than keeping them.  Result on
    zh_hotel_reviews: 44.5% pass overall; 54% have fewer than 50 words and
    fail zh_min_chars or zh_min_words; of the reviews with 50+ words 97% pass.
    Set ``min_words``/``min_chars`` lower (e.g. 10/20) to keep short texts.
    """

    min_chars: NonNegInt = 80  # ours (see class docstring)
    min_cjk_ratio: Fraction = 0.3  # ours (see class docstring)
    min_line_punct_frac: Fraction = 0.5  # ours (see class docstring)
    max_dup_line_frac: Fraction = 0.3  # Rae et al. 2021 table A1 duplicate line fraction, applied to Chinese by us
    max_boilerplate_line_frac: Fraction = 0.4  # ours (see class docstring)
    short_line_chars: PosInt = 10  # ours: a "short" line for zh_boilerplate_lines (defines a stat)
    headline_chars: PosInt = 30  # ours: longest headline-like line, left out of zh_line_punct (defines a stat)
    min_words: NonNegInt = 50  # Rae et al. 2021 A.1.1 50-word minimum, applied to jieba words by us


class QualityConfig(BaseModel):
    """All quality rule sets; each switchable with ``enabled``."""

    model_config = _MODEL_CONFIG

    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    chinese: ChineseConfig = Field(default_factory=ChineseConfig)


# --------------------------------------------------------------------------
# The rule table
# --------------------------------------------------------------------------
RuleSet = Literal["gopher_quality", "gopher_repetition", "c4", "fineweb", "chinese"]


class Rule(NamedTuple):
    """One row of the declarative rule table."""

    code: str  # reason code (quality_reason / reject_reason)
    ruleset: RuleSet  # the config section whose `enabled` switches it
    stat: str  # key in the document_stats dict
    op: Literal["min", "max", "flag"]  # min: fails if stat < thr; max: if stat > thr; flag: if stat != 0
    attr: str  # attribute of the config section: the threshold, or (flag) the on/off switch
    citation: str
    description: str  # one line saying what failed


_GQ, _GR = "gopher_quality", "gopher_repetition"
_MWL = "mean word length outside gopher_quality.min/max_mean_word_length"

RULES: tuple[Rule, ...] = (
    # gopher_quality
    Rule("gopher_min_words", _GQ, "n_words", "min", "min_words", GOPHER, "too few words"),
    Rule("gopher_max_words", _GQ, "n_words", "max", "max_words", GOPHER, "too many words"),
    Rule("gopher_mean_word_length", _GQ, "mean_word_length", "min", "min_mean_word_length", GOPHER, _MWL),
    Rule("gopher_mean_word_length", _GQ, "mean_word_length", "max", "max_mean_word_length", GOPHER, _MWL),
    Rule("gopher_hash_ratio", _GQ, "hash_ratio", "max", "max_hash_ratio", GOPHER,
         "too many '#' per word"),
    Rule("gopher_ellipsis_ratio", _GQ, "ellipsis_ratio", "max", "max_ellipsis_ratio", GOPHER,
         "too many ellipses ('...' or '…') per word"),
    Rule("gopher_bullet_lines", _GQ, "bullet_line_frac", "max", "max_bullet_lines", GOPHER,
         "too many lines start with a bullet point"),
    Rule("gopher_ellipsis_lines", _GQ, "ellipsis_line_frac", "max", "max_ellipsis_lines", GOPHER,
         "too many lines end with an ellipsis"),
    Rule("gopher_alpha_words", _GQ, "alpha_word_frac", "min", "min_alpha_words", GOPHER,
         "too few words contain a letter"),
    Rule("gopher_stop_words", _GQ, "n_stop_words", "min", "min_stop_words", GOPHER,
         "too few distinct stop words (the, be, to, of, and, that, have, with)"),
    # gopher_repetition
    Rule("gopher_dup_lines", _GR, "dup_line_frac", "max", "max_dup_line_frac", GOPHER_REP,
         "too many lines repeat an earlier line"),
    Rule("gopher_dup_paragraphs", _GR, "dup_para_frac", "max", "max_dup_para_frac", GOPHER_REP,
         "too many paragraphs repeat an earlier paragraph"),
    Rule("gopher_dup_line_chars", _GR, "dup_line_char_frac", "max", "max_dup_line_char_frac", GOPHER_REP,
         "too many characters in repeated lines"),
    Rule("gopher_dup_paragraph_chars", _GR, "dup_para_char_frac", "max", "max_dup_para_char_frac",
         GOPHER_REP, "too many characters in repeated paragraphs"),
    *(
        Rule(f"gopher_top_{n}gram", _GR, f"top_{n}gram_char_frac", "max", f"max_top_{n}gram_char_frac",
             GOPHER_REP, f"the most frequent {n}-gram covers too many characters")
        for n in TOP_NGRAM_NS
    ),
    *(
        Rule(f"gopher_dup_{n}gram", _GR, f"dup_{n}gram_char_frac", "max", f"max_dup_{n}gram_char_frac",
             GOPHER_REP, f"repeated {n}-grams cover too many characters")
        for n in DUP_NGRAM_NS
    ),
    # c4
    Rule("c4_lorem_ipsum", "c4", "c4_has_lorem_ipsum", "flag", "lorem_ipsum", C4,
         "contains 'lorem ipsum'"),
    Rule("c4_curly_bracket", "c4", "c4_has_curly_bracket", "flag", "curly_bracket", C4,
         "contains a curly bracket"),
    Rule("c4_bad_words", "c4", "c4_has_bad_word", "flag", "bad_words", C4_BADWORDS,
         "contains a word of the configured bad-word list"),
    Rule("c4_min_sentences", "c4", "c4_n_sentences", "min", "min_sentences", C4,
         "fewer than c4.min_sentences sentences"),
    # fineweb
    Rule("fineweb_line_punct", "fineweb", "line_punct_frac", "min", "min_line_punct_frac", FINEWEB,
         "too few lines end with punctuation"),
    Rule("fineweb_short_lines", "fineweb", "short_line_frac", "max", "max_short_line_frac", FINEWEB,
         "too many short lines"),
    Rule("fineweb_dup_line_chars", "fineweb", "dup_line_char_frac", "max", "max_dup_line_char_frac",
         FINEWEB, "too many characters in repeated lines (FineWeb threshold)"),
    Rule("fineweb_newline_ratio", "fineweb", "newline_word_ratio", "max", "max_newline_word_ratio",
         FINEWEB_CODE, "too many line breaks per word"),
    # chinese
    Rule("zh_min_chars", "chinese", "zh_n_chars", "min", "min_chars", ZH_OURS,
         "too few non-whitespace characters"),
    Rule("zh_cjk_ratio", "chinese", "zh_cjk_frac", "min", "min_cjk_ratio", ZH_OURS,
         "too few CJK characters"),
    Rule("zh_line_punct", "chinese", "zh_line_punct_frac", "min", "min_line_punct_frac", ZH_OURS,
         "too few lines with Chinese/ASCII sentence-ending punctuation"),
    Rule("zh_dup_lines", "chinese", "zh_dup_line_frac", "max", "max_dup_line_frac", ZH_GOPHER,
         "too many lines repeat an earlier line"),
    Rule("zh_boilerplate_lines", "chinese", "zh_boilerplate_line_frac", "max", "max_boilerplate_line_frac",
         ZH_OURS, "too many short unpunctuated lines (navigation, boilerplate)"),
    Rule("zh_min_words", "chinese", "zh_n_words", "min", "min_words", ZH_GOPHER_WORDS,
         "too few words"),
)

#: Statistics of space-delimited (non-Chinese) documents, in output order.
LATIN_STATS: tuple[str, ...] = (
    "n_words", "mean_word_length", "hash_ratio", "ellipsis_ratio", "bullet_line_frac",
    "ellipsis_line_frac", "alpha_word_frac", "n_stop_words",
    "dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac",
    *(f"top_{n}gram_char_frac" for n in TOP_NGRAM_NS),
    *(f"dup_{n}gram_char_frac" for n in DUP_NGRAM_NS),
    "c4_has_lorem_ipsum", "c4_has_curly_bracket", "c4_has_bad_word", "c4_n_sentences",
    "line_punct_frac", "short_line_frac", "newline_word_ratio",
    "fineweb_short_line_chars",  # definition parameter the stats were computed with
)
#: Statistics of Chinese documents, in output order.
ZH_STATS: tuple[str, ...] = (
    "zh_n_chars", "zh_cjk_frac", "zh_line_punct_frac", "zh_dup_line_frac",
    "zh_boilerplate_line_frac", "zh_n_words",
    "zh_short_line_chars", "zh_headline_chars",  # definition parameters the stats were computed with
)
#: Every key :func:`document_stats` returns, in this order.  The statistics of the
#: family that does not apply to the document's language are NaN.
STAT_NAMES: tuple[str, ...] = ("n_chars", "n_lines", *LATIN_STATS, *ZH_STATS)

_DEFAULT_CFG = QualityConfig()


def is_chinese(lang: str | None) -> bool:
    """True for "zh" and tagged variants ("zh-CN", "zh_Hant", "ZH"), which get the chinese rules."""
    if not lang:
        return False
    return lang[:2].lower() == "zh" and (len(lang) == 2 or lang[2] in "-_")


def reason_codes() -> dict[str, str]:
    """Reason code -> one-line description, in rule order (for docs and the CLI)."""
    out: dict[str, str] = {}
    for r in RULES:
        out.setdefault(r.code, r.description)
    return out


# --------------------------------------------------------------------------
# Scoring: one pass per document
# --------------------------------------------------------------------------
def _lines_and_paragraphs(text: str) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    paras: list[str] = []
    cur: list[str] = []
    for raw in text.split("\n"):
        s = raw.strip()
        if s:
            lines.append(s)
            cur.append(s)
        elif cur:
            paras.append("\n".join(cur))
            cur = []
    if cur:
        paras.append("\n".join(cur))
    return lines, paras


def _dups(items: list[str]) -> tuple[int, int]:
    """(number of repeat occurrences, their total characters); first occurrence not counted."""
    if len(set(items)) == len(items):
        return 0, 0
    seen: set[str] = set()
    n = c = 0
    for s in items:
        if s in seen:
            n += 1
            c += len(s)
        else:
            seen.add(s)
    return n, c


def _ngram_stats(words: list[str], out: dict[str, float]) -> None:
    """Top 2..4-gram and duplicate 5..10-gram character fractions.

    Exact, but only ever touches n-grams that occur at least twice: an
    (n+1)-gram at position i is determined by the n-grams at i and i+1, and can
    only repeat if both of those repeat.  So each level keys the (n+1)-grams
    by a pair of small ints (the ids of the two n-grams) at the positions that
    survived the previous level, and clean text usually empties out after n = 3.
    """
    nw = len(words)
    prefix = list(accumulate(map(len, words), initial=0))
    total = prefix[-1]
    for n in TOP_NGRAM_NS:
        out[f"top_{n}gram_char_frac"] = 0.0
    for n in DUP_NGRAM_NS:
        out[f"dup_{n}gram_char_frac"] = 0.0
    if nw < 2 or total == 0:
        return

    # level 2: keys are word pairs
    positions: list[int] | range = range(nw - 1)
    keys: list = list(zip(words, words[1:]))
    n = 2
    while True:
        counts = Counter(keys)
        top = max(counts.values())
        if top < 2:
            return  # nothing repeats at this length, so nothing longer repeats either
        get = counts.__getitem__
        dup = [(p, k) for p, k, c in zip(positions, keys, map(get, keys)) if c > 1]
        if n in TOP_NGRAM_NS:
            best = max(prefix[p + n] - prefix[p] for p, k in dup if counts[k] == top)
            out[f"top_{n}gram_char_frac"] = top * best / total
        if n in DUP_NGRAM_NS:
            covered = 0
            end = 0
            for p, _ in dup:  # positions ascend: sweep the union of [p, p+n)
                start = p if p > end else end
                stop = p + n
                if stop > start:
                    covered += prefix[stop] - prefix[start]
                    end = stop
            out[f"dup_{n}gram_char_frac"] = covered / total
        if n == DUP_NGRAM_NS[-1]:
            return
        # intern the repeated n-grams; an (n+1)-gram is the pair of n-gram ids at p, p+1
        ids: dict = {}
        pos_id: dict[int, int] = {}
        for p, k in dup:
            i = ids.get(k)
            if i is None:
                i = ids[k] = len(ids)
            pos_id[p] = i
        positions = [p for p, _ in dup if p + 1 in pos_id]
        if not positions:
            return
        keys = [(pos_id[p], pos_id[p + 1]) for p in positions]
        n += 1


def bad_words_pattern(words: Iterable[str]) -> re.Pattern | None:
    """C4's bad-word test for a word list: any listed word (lower-cased) between non-word characters or the text's
    ends, as in the C4 reference code; None for an empty list."""
    words = sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?:\W|^)(?:" + "|".join(map(re.escape, words)) + r")(?:\W|$)")


def _latin_stats(text: str, lines: list[str], paras: list[str], short_chars: int,
                 bad_words: re.Pattern | None) -> dict[str, float]:
    out: dict[str, float] = {}
    tokens = text.split()
    n_tokens = len(tokens)
    denom = n_tokens or 1
    out["n_words"] = float(n_tokens)

    # normalised words: lower-cased, punctuation stripped, empty ones dropped
    low = text.lower()
    low_tokens = low.split()
    words = list(filter(None, map(str.strip, low_tokens, repeat(WORD_STRIP, len(low_tokens)))))
    n_norm = len(words)
    out["mean_word_length"] = sum(map(len, words)) / n_norm if n_norm else 0.0
    out["hash_ratio"] = text.count("#") / denom
    out["ellipsis_ratio"] = (text.count("...") + text.count("…")) / denom

    # words containing a letter: all tokens but those without one, found in one pass of the text
    n_no_alpha = len(_NO_LETTER_TOKENS(text))
    out["alpha_word_frac"] = (n_tokens - n_no_alpha) / n_tokens if n_tokens else 0.0
    out["n_stop_words"] = float(len(GOPHER_STOP_WORDS.intersection(words)))

    # line statistics, one loop
    n_lines = len(lines)
    n_bullet = n_ell = n_fw_end = n_short = 0
    line_chars = 0
    bullets, ellipses, fw_end = BULLET_CHARS, ELLIPSES, FINEWEB_END_MARKS
    for s in lines:
        ls = len(s)
        line_chars += ls
        if s[0] in bullets:
            n_bullet += 1
        if ls <= short_chars:
            n_short += 1
        if s.endswith(fw_end):
            n_fw_end += 1
        if s.endswith(ellipses):
            n_ell += 1
    ln = n_lines or 1
    out["bullet_line_frac"] = n_bullet / ln
    out["ellipsis_line_frac"] = n_ell / ln
    out["line_punct_frac"] = n_fw_end / ln
    out["short_line_frac"] = n_short / ln
    out["newline_word_ratio"] = text.count("\n") / denom

    # repetition of lines and paragraphs
    d_n, d_c = _dups(lines)
    out["dup_line_frac"] = d_n / ln
    out["dup_line_char_frac"] = d_c / line_chars if line_chars else 0.0
    d_n, d_c = _dups(paras)
    para_chars = sum(map(len, paras))
    out["dup_para_frac"] = d_n / (len(paras) or 1)
    out["dup_para_char_frac"] = d_c / para_chars if para_chars else 0.0
    _ngram_stats(words, out)

    # C4 page rules, on the text as cleaned by the line rules
    out["c4_has_lorem_ipsum"] = 1.0 if "lorem ipsum" in low else 0.0
    out["c4_has_curly_bracket"] = 1.0 if "{" in text else 0.0
    out["c4_has_bad_word"] = 1.0 if bad_words is not None and bad_words.search(low) else 0.0
    out["c4_n_sentences"] = float(sum(map(count_sentences, lines)))
    out["fineweb_short_line_chars"] = float(short_chars)
    return out


def _zh_stats(text: str, lines: list[str], seg: str | None, short_chars: int, headline_chars: int) -> dict[str, float]:
    out: dict[str, float] = {}
    n_chars = sum(map(len, text.split()))  # non-whitespace characters
    n_cjk = len(text) - len(_CJK.sub("", text))
    out["zh_n_chars"] = float(n_chars)
    out["zh_cjk_frac"] = n_cjk / n_chars if n_chars else 0.0
    ln = len(lines) or 1
    n_end = n_boiler = n_headline = 0
    for s in lines:
        if zh_has_sentence_end(s):
            n_end += 1
        else:
            n_headline += len(s) <= headline_chars
            n_boiler += len(s) <= short_chars
    judged = len(lines) - n_headline
    out["zh_line_punct_frac"] = n_end / judged if judged else 0.0
    out["zh_dup_line_frac"] = _dups(lines)[0] / ln
    out["zh_boilerplate_line_frac"] = n_boiler / ln
    if seg is None:
        out["zh_n_words"] = float(n_cjk)
    else:
        out["zh_n_words"] = float(len(_WORD_TOKEN.findall(seg)))
    out["zh_short_line_chars"] = float(short_chars)
    out["zh_headline_chars"] = float(headline_chars)
    return out


def document_stats(
    text: str, lang: str | None, seg: str | None = None, *, cfg: QualityConfig | None = None,
    bad_words: re.Pattern | None = None,
) -> dict[str, float]:
    """Every statistic any rule needs, computed in one pass over the document.

    Returns all :data:`STAT_NAMES` keys, in that order; the family that does not
    apply to ``lang`` (the Chinese stats for non-Chinese documents and vice
    versa) is NaN.  ``seg`` (space-joined jieba words) is used for Chinese only.
    ``cfg`` only matters for the line lengths that define statistics; by
    default the published/default ones are used.  ``bad_words``: C4's bad-word
    test (:func:`bad_words_pattern`), None when no list is configured.
    """
    cfg = cfg or _DEFAULT_CFG
    lines, paras = _lines_and_paragraphs(text)
    if is_chinese(lang):
        vals = _zh_stats(text, lines, seg, cfg.chinese.short_line_chars, cfg.chinese.headline_chars)
    else:
        vals = _latin_stats(text, lines, paras, cfg.fineweb.short_line_chars, bad_words)
    vals["n_chars"] = float(len(text))
    vals["n_lines"] = float(len(lines))
    nan = math.nan
    return {k: vals.get(k, nan) for k in STAT_NAMES}


# --------------------------------------------------------------------------
# Decision: reads only the stats dict and the config
# --------------------------------------------------------------------------
def active_rules(lang: str | None, cfg: QualityConfig) -> list[tuple[str, str, str, float]]:
    """(code, stat, op, threshold) of the enabled rules that apply to ``lang``, in order."""
    zh = is_chinese(lang)
    plan = []
    for r in RULES:
        if (r.ruleset == "chinese") != zh:
            continue
        section = getattr(cfg, r.ruleset)
        if not section.enabled:
            continue
        value = getattr(section, r.attr)
        if r.op == "flag":
            if not value:
                continue
            value = 0.0
        plan.append((r.code, r.stat, r.op, float(value)))
    return plan


def _check_definitions(stats: dict[str, float], lang: str | None, cfg: QualityConfig) -> None:
    if is_chinese(lang):
        defs = {"zh_short_line_chars": cfg.chinese.short_line_chars, "zh_headline_chars": cfg.chinese.headline_chars}
    else:
        defs = {"fineweb_short_line_chars": cfg.fineweb.short_line_chars}
    for key, want in defs.items():
        got = stats.get(key)
        if got is None or math.isnan(got):
            raise ValueError(
                f"stats lack {key!r}: they were computed for the other language family "
                f"(lang={lang!r}) or not by document_stats"
            )
        if got != want:
            raise ValueError(
                f"stats were computed with {key}={got:g} but the config says {want}; "
                "recompute them with document_stats(..., cfg=cfg)"
            )


def _failing(stats: dict[str, float], lang: str | None, cfg: QualityConfig, stop_at_first: bool,
             rules: list[tuple[str, str, str, float]] | None = None) -> list[str]:
    _check_definitions(stats, lang, cfg)
    failed: list[str] = []
    for code, stat, op, thr in active_rules(lang, cfg) if rules is None else rules:
        v = stats[stat]
        if op == "min":
            bad = v < thr
        elif op == "max":
            bad = v > thr
        else:
            bad = v != 0.0
        if bad and code not in failed:
            failed.append(code)
            if stop_at_first:
                break
    return failed


def first_failure(stats: dict[str, float], lang: str | None, cfg: QualityConfig) -> str | None:
    """Reason code of the first failing rule in :data:`RULES` order, or None if all pass."""
    failed = _failing(stats, lang, cfg, True)
    return failed[0] if failed else None


def first_failures(stats: Sequence[dict[str, float]], langs: Sequence[str | None], cfg: QualityConfig
                   ) -> list[str | None]:
    """:func:`first_failure` of each document, with the rules of each language family listed once."""
    rules = {zh: active_rules("zh" if zh else None, cfg) for zh in (False, True)}
    out = []
    for st, lang in zip(stats, langs):
        failed = _failing(st, lang, cfg, True, rules[is_chinese(lang)])
        out.append(failed[0] if failed else None)
    return out


def all_failures(stats: dict[str, float], lang: str | None, cfg: QualityConfig) -> list[str]:
    """Every failing rule's reason code, in :data:`RULES` order (no repeats)."""
    return _failing(stats, lang, cfg, False)
