"""Line rules: which lines of a document a line-cleaning stage removes, and why.

Pure text logic. A document's lines are ``text.split("\\n")``; a rule judges one line (stripped of surrounding
whitespace) and either keeps it or names a reason. Blank lines are not judged: they carry no text, and they are
the paragraph breaks Gopher's paragraph statistics read. Only when every other line of a document is removed do
its blank lines go too (``blank_line_of_emptied_page``), so that an empty kept text always means "no line left"
(a kept text of blank lines alone would join to the same string as no lines at all, and the original could not
be rebuilt). :func:`clean_lines` returns the kept text
(``"\\n".join`` of the kept lines, in order) and every removed line with its 0-based index and reason, so
``original = kept lines + removed lines`` exactly.

C4 (Raffel et al. 2020, JMLR 21(140), section 2.2) edits pages line by line; its line rules apply to every document
that is not Chinese, in the order of the C4 reference code (TFDS ``c4_utils.py``; datatrove's ``C4QualityFilter``
keeps it), the first failing rule naming the reason:

* ``c4_line_no_terminal_punct`` -- "We only retained lines that ended in a terminal punctuation mark (i.e. a
  period, exclamation mark, question mark, or end quotation mark)"; a line ending in "..." does not count (reference
  code). **Off by default**: FineWeb's published pipeline turns it off (``C4QualityFilter(
  filter_no_terminal_punct=False)`` in datatrove's ``examples/fineweb.py``; Penedo et al. 2024, arXiv:2406.17557,
  section 3.3, which found it removes too many tokens), and it cuts every hard-wrapped book to nothing;
  ``c4.terminal_punct: true`` turns it on.
* ``c4_line_too_few_words`` -- "only retained lines that contained at least 3 words": every line, with or without
  terminal punctuation (the paper's sentence joins the two rules with "and"; the reference code tests the word count
  of every line that survived the punctuation test). Words are whitespace-separated tokens.
* ``c4_line_javascript`` -- "we removed any line with the word Javascript" (case-insensitive substring, as in the
  reference code).
* ``c4_line_policy`` -- lines containing "terms of use", "privacy policy", "cookie policy", "uses cookies",
  "use of cookies" or "use cookies" (Raffel et al. 2020, s2.2; the phrase list of the reference code).

C4's removal of Wikipedia citation markers ("[1]", "[citation needed]") edits *inside* a line, which no stage may do
(only whole lines are removed), so it is not implemented. Its page rules (lorem ipsum, "{", fewer than 5 sentences,
bad words) are page rules of the quality stage, judged on the cleaned text.

Chinese documents get the Chinese counterparts instead (ours; no paper publishes line rules for Chinese web text):

* ``zh_line_navigation`` -- a line with no sentence end whose items (split at whitespace and menu separators
  ``| / \\ > < » « › ‹ · • - – — _ = ~``) are all at most ``chinese.nav_item_chars`` (10) characters: menu items,
  channel names, buttons, breadcrumbs, "设为首页 | 论坛首页", datelines; and a line that is one bare URL (a link
  list of a government portal). A headline of more than 10 characters survives.
* ``zh_line_boilerplate`` -- a line containing a site-boilerplate phrase of :data:`ZH_BOILERPLATE` (copyright,
  ICP licence, share buttons, reprint notices), the counterpart of C4's policy lines.

Sentence ends in Chinese text are tested after NFKC normalisation, so full-width (！？；．) and small-form (﹖ U+FE56,
﹗, ﹔, ﹒) variants count as their ASCII forms: see :func:`zh_has_sentence_end`.
"""
from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "C4_POLICY_PHRASES",
    "LINE_REASONS",
    "ZH_BOILERPLATE",
    "C4LinesConfig",
    "ChineseLinesConfig",
    "LinesConfig",
    "clean_lines",
    "line_reason",
    "zh_has_sentence_end",
]

#: C4: "a period, exclamation mark, question mark, or end quotation mark" (Raffel et al. 2020, s2.2).
C4_END_MARKS = (".", "!", "?", '"', "”")
ELLIPSIS = ("...", "…")
#: C4's cookie/policy boilerplate phrases, matched in the lower-cased line (Raffel et al. 2020, s2.2).
C4_POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                     "use cookies")
#: Site boilerplate in Chinese pages, matched in the NFKC-normalised, lower-cased line (ours, from the navigation
#: and footers of the GeneralNewsExtractor test pages; none occurs in the 1,104 zh_wiki paragraphs).
ZH_BOILERPLATE = ("版权所有", "版权声明", "免责声明", "icp备", "icp证", "公网安备", "违法和不良信息举报",
                  "扫一扫", "扫描二维码", "分享到", "禁止转载", "转载请注明", "未经授权", "copyright", "©")

LINE_REASONS: dict[str, str] = {
    "c4_line_no_terminal_punct": "line does not end in . ! ? or a closing quote (C4; off by default, as in FineWeb)",
    "c4_line_too_few_words": "line has fewer than c4.min_words words (C4: at least 3)",
    "c4_line_javascript": "line mentions 'javascript' (C4)",
    "c4_line_policy": "line carries a terms-of-use / privacy / cookie notice (C4)",
    "zh_line_navigation": "Chinese line of short unpunctuated items: menu, breadcrumb, button, dateline",
    "zh_line_boilerplate": "Chinese line with a site-boilerplate phrase (copyright, ICP licence, share, reprint)",
    "blank_line_of_emptied_page": "blank line of a document whose every other line was removed",
}

# after NFKC: 。 ! ? ; or a "." not followed by a letter/digit ("3.5", "163.com"); "…" becomes "..."
_ZH_SENT_END = re.compile(r"[。!?;]|\.(?![0-9A-Za-z])")
_NAV_SEPARATORS = re.compile(r"[\s|/\\><»«›‹·•\-–—_=~]+")
_BARE_URL = re.compile(r"(?:https?://|www\.)\S+")


# the characters NFKC turns into 。 ! ? or ; (themselves, the Greek question mark, full-width, small and vertical
# forms; tests/test_lines.py derives the list): one of them in a line is a sentence end in its normalised form too
# (these marks never compose with a neighbour), so such a line needs no normalising
_ZH_SENT_MARK = re.compile("[。!?;\u037e\ufe12\ufe14\ufe15\ufe16\ufe54\ufe56\ufe57\uff01\uff1b\uff1f\uff61]")


def zh_has_sentence_end(line: str) -> bool:
    """True when an NFKC-normalised line contains a Chinese or ASCII sentence end."""
    return (_ZH_SENT_MARK.search(line) is not None
            or _ZH_SENT_END.search(unicodedata.normalize("NFKC", line)) is not None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    enabled: bool = True


class C4LinesConfig(_Section):
    """C4's line rules (Raffel et al. 2020, s2.2), for documents that are not Chinese."""

    # FineWeb turns it off: C4QualityFilter(filter_no_terminal_punct=False), datatrove examples/fineweb.py
    terminal_punct: bool = Field(False, description="remove lines without terminal punctuation (C4; FineWeb: off)")
    min_words: int = Field(3, ge=0, description="remove lines with fewer words (Raffel et al. 2020 s2.2: 3)")
    javascript: bool = Field(True, description="remove lines mentioning 'javascript' (Raffel et al. 2020 s2.2)")
    policy: bool = Field(True, description="remove terms-of-use / privacy / cookie lines (Raffel et al. 2020 s2.2)")


class ChineseLinesConfig(_Section):
    """Navigation and boilerplate lines of Chinese documents (ours)."""

    navigation: bool = Field(True, description="remove lines of short unpunctuated items (menus, breadcrumbs)")
    nav_item_chars: int = Field(10, ge=1, description="longest item of a navigation line, in characters")
    boilerplate: bool = Field(True, description="remove lines with a site-boilerplate phrase")


class LinesConfig(BaseModel):
    """The line rule sets; each switchable with ``enabled``."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    c4: C4LinesConfig = Field(default_factory=C4LinesConfig)
    chinese: ChineseLinesConfig = Field(default_factory=ChineseLinesConfig)


def _c4_reason(line: str, cfg: C4LinesConfig) -> str | None:
    if cfg.terminal_punct and (not line.endswith(C4_END_MARKS) or line.endswith(ELLIPSIS)):
        return "c4_line_no_terminal_punct"
    if len(line.split()) < cfg.min_words:
        return "c4_line_too_few_words"
    low = line.lower()
    if cfg.javascript and "javascript" in low:
        return "c4_line_javascript"
    if cfg.policy and any(p in low for p in C4_POLICY_PHRASES):
        return "c4_line_policy"
    return None


def _zh_reason(line: str, cfg: ChineseLinesConfig) -> str | None:
    norm = unicodedata.normalize("NFKC", line)
    if cfg.boilerplate and any(p in norm.lower() for p in ZH_BOILERPLATE):
        return "zh_line_boilerplate"
    if cfg.navigation:
        if _BARE_URL.fullmatch(norm):
            return "zh_line_navigation"
        limit = cfg.nav_item_chars
        if _ZH_SENT_END.search(norm) is None and all(len(item) <= limit for item in _NAV_SEPARATORS.split(norm)):
            return "zh_line_navigation"
    return None


def line_reason(line: str, chinese: bool, cfg: LinesConfig) -> str | None:
    """The reason a (non-blank) line is removed, or None to keep it. ``chinese``: the document is Chinese."""
    line = line.strip()
    if not line:
        return None
    section = cfg.chinese if chinese else cfg.c4
    if not section.enabled:
        return None
    return _zh_reason(line, section) if chinese else _c4_reason(line, section)


def clean_lines(text: str, chinese: bool, cfg: LinesConfig) -> tuple[str, list[tuple[int, str, str]]]:
    """(kept text, [(line index, line, reason), ...]) of one document; the text unchanged when nothing is removed."""
    lines = text.split("\n")
    removed = []
    kept = []
    for i, line in enumerate(lines):
        reason = line_reason(line, chinese, cfg)
        if reason is None:
            kept.append(i)
        else:
            removed.append((i, line, reason))
    if not removed:
        return text, []
    if all(not lines[i].strip() for i in kept):
        removed = sorted(removed + [(i, lines[i], "blank_line_of_emptied_page") for i in kept])
        return "", removed
    return "\n".join(lines[i] for i in kept), removed
