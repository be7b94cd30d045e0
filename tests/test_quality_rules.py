"""Tests for filters/quality.py: every rule fails alone on a constructed document,
the rule table and config behave, and real fixtures land where measured.

Offline and fast: fixtures are small JSONL samples in tests/fixtures/quality/
(see the README there); constructed documents use pseudo-words from a seeded RNG
so that nothing repeats unless a test makes it repeat.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

import pydantic
import pytest

from corpusslim.filters.quality import (
    RULES,
    STAT_NAMES,
    WORD_STRIP,
    QualityConfig,
    all_failures,
    bad_words_pattern,
    document_stats,
    first_failure,
    first_failures,
    is_chinese,
    reason_codes,
)
from corpusslim.filters.sentences import _NEXT_WORD, _is_abbreviation, count_sentences

FIXTURES = Path(__file__).parent / "fixtures" / "quality"

EXPECTED_CODES = {
    "gopher_min_words", "gopher_max_words", "gopher_mean_word_length", "gopher_hash_ratio",
    "gopher_ellipsis_ratio", "gopher_bullet_lines", "gopher_ellipsis_lines", "gopher_alpha_words",
    "gopher_stop_words",
    "gopher_dup_lines", "gopher_dup_paragraphs", "gopher_dup_line_chars", "gopher_dup_paragraph_chars",
    "gopher_top_2gram", "gopher_top_3gram", "gopher_top_4gram",
    "gopher_dup_5gram", "gopher_dup_6gram", "gopher_dup_7gram", "gopher_dup_8gram", "gopher_dup_9gram",
    "gopher_dup_10gram",
    "c4_lorem_ipsum", "c4_curly_bracket", "c4_bad_words", "c4_min_sentences",
    "fineweb_line_punct", "fineweb_short_lines", "fineweb_dup_line_chars", "fineweb_newline_ratio",
    "zh_min_chars", "zh_cjk_ratio", "zh_line_punct", "zh_dup_lines", "zh_boilerplate_lines",
    "zh_min_words",
}


def load(name: str) -> list[dict]:
    with (FIXTURES / f"{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------
# Document builders (English): seeded pseudo-words, so repetition only where wanted
# ---------------------------------------------------------------------------
_CONS, _VOW = "bcdfghklmnprstvz", "aeiou"


class Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def word(self, syllables: int | None = None) -> str:
        k = syllables or self.rng.randint(2, 3)
        return "".join(self.rng.choice(_CONS) + self.rng.choice(_VOW) for _ in range(k))

    def words(self, n: int, syllables: int | None = None) -> list[str]:
        return [self.word(syllables) for _ in range(n)]

    def sentence(self, n: int = 10, end: str = ".", syllables: int | None = None) -> str:
        """n words, three of them the stop words the/of/and; starts with a capital."""
        w = self.words(n - 3, syllables)
        out = [w[0].capitalize(), w[1], "the", w[2], "of", *w[3:5], "and", *w[5:]]
        return " ".join(out[:n]) + end

    def line(self, k: int = 3, **kw) -> str:
        return " ".join(self.sentence(**kw) for _ in range(k))

    def prose(self, n_lines: int, k: int = 3, sep: str = "\n\n") -> str:
        return sep.join(self.line(k) for _ in range(n_lines))


#: A bad-word list for the C4 bad-word rule: words the seeded pseudo-word generator never makes (no "x", "q").
BAD_WORDS = bad_words_pattern(["xqzzy", "Quux Flerb"])


def failures(text: str, lang: str | None = "en", cfg: QualityConfig | None = None, seg=None):
    cfg = cfg or QualityConfig()
    return all_failures(document_stats(text, lang, seg, cfg=cfg, bad_words=BAD_WORDS), lang, cfg)


def fit(build, stat: str, lo: float, hi: float, max_filler: int = 400) -> str:
    """build(n_filler) -> text; the first text whose `stat` lies in (lo, hi]."""
    for n in range(max_filler):
        text = build(n)
        v = document_stats(text, "en")[stat]
        if lo < v <= hi:
            return text
    raise AssertionError(f"no filler amount puts {stat} in ({lo}, {hi}]")


# --- one builder per rule: returns (text, config overrides or None) ---------
def doc_gopher_min_words():
    g = Gen(1)
    return " ".join(g.sentence(8) for _ in range(5)), None  # 40 words, 5 sentences


def doc_gopher_max_words():
    g = Gen(2)
    return g.prose(3400, k=3, sep="\n"), None  # 102,000 words


def doc_gopher_mean_word_length():
    g = Gen(3)  # one-syllable pseudo-words: mean word length about 2.2
    return "\n\n".join(g.line(2, n=9, syllables=1) for _ in range(4)), None


def doc_gopher_mean_word_length_long():
    g = Gen(4)  # eight-syllable pseudo-words: mean word length about 12
    return "\n\n".join(g.line(2, n=9, syllables=8) for _ in range(4)), None


def _symbol_doc(seed: int, before: str, after: str):
    """Four paragraphs with three words marked by a symbol each (``#word`` or ``word...``)."""
    g = Gen(seed)
    lines = []
    for _ in range(4):
        w = g.words(10)
        lines.append(f"{w[0].capitalize()} {before}{w[1]}{after} the {w[2]} of {before}{w[3]}{after} {w[4]} and "
                     f"{w[5]} {w[6]}. {w[7].capitalize()} the {before}{w[8]}{after} of {w[9]} and more.")
    return "\n\n".join(lines), None


def doc_gopher_hash_ratio():
    return _symbol_doc(5, "#", "")


def doc_gopher_ellipsis_ratio():
    return _symbol_doc(6, "", "...")


def doc_gopher_bullet_lines():
    g = Gen(7)
    return "\n".join("- " + g.sentence() for _ in range(12)), None


def doc_gopher_ellipsis_lines():
    g = Gen(8)
    lines = []
    for i in range(10):
        lines.append(g.sentence(8, end="...") if i % 5 in (1, 3) else g.line(2))
    return "\n".join(lines), None  # 4 of 10 lines end with "..."


def doc_gopher_alpha_words():
    g = Gen(9)
    r = g.rng
    lines = []
    for _ in range(5):
        w = g.words(7)
        nums = [str(r.randint(100, 9999)) for _ in range(4)]
        lines.append(f"{w[0].capitalize()} {nums[0]} the {w[1]} {nums[1]} of {w[2]} {nums[2]} "
                     f"and {w[3]} {nums[3]} {w[4]} {w[5]} {w[6]}.")
    return "\n\n".join(lines), None  # 4 of 15 tokens without a letter


def doc_gopher_stop_words():
    g = Gen(10)
    lines = []
    for _ in range(4):
        sents = []
        for _ in range(3):
            w = g.words(8)
            sents.append(f"{w[0].capitalize()} {w[1]} in {w[2]} {w[3]} {w[4]} for {w[5]} {w[6]} {w[7]}.")
        lines.append(" ".join(sents))
    lines[0] = "The " + lines[0][0].lower() + lines[0][1:]  # exactly one distinct stop word
    return "\n\n".join(lines), None


def doc_gopher_dup_lines():
    g = Gen(11)  # each paragraph: a unique long line plus the same short line
    return "\n\n".join(g.line(3) + "\nRead more here now." for _ in range(8)), None


def doc_gopher_dup_paragraphs():
    g = Gen(12)
    paras = ["\n".join(g.line(1) for _ in range(3)) for _ in range(6)]
    for i in (1, 2, 3, 4, 5):
        paras.insert(2 * i - 1, "Share this story.")
    return "\n\n".join(paras), None  # 4 of 11 paragraphs repeat


def _four_word_repeats(seed: int, sep: str) -> str:
    """Six distinct 4-word lines, each twice, between unique sentences.

    Lines of only four words keep the duplicate 5-gram fraction at zero, and
    each repeated line occurs only twice so no n-gram dominates.
    """
    g = Gen(seed)
    reps = [" ".join(w.capitalize() for w in g.words(4, syllables=5)) + "." for _ in range(6)]
    lines = []
    for rep in reps + reps:
        lines.append(g.sentence())
        lines.append(rep)
    return sep.join(lines)


# gopher_dup_line_chars tests the same statistic as fineweb_dup_line_chars with a
# higher threshold (0.20 vs 0.10), and every character of a repeated paragraph is
# in a repeated line; so these two can only fail alone with the dominating rules
# switched off (test_dominated_rules shows the dominance under the defaults).
_NO_FINEWEB = {"fineweb": {"enabled": False}}


def doc_gopher_dup_line_chars():
    return _four_word_repeats(13, "\n"), _NO_FINEWEB  # one paragraph: no paragraph repeats


def doc_gopher_dup_paragraph_chars():
    return _four_word_repeats(14, "\n\n"), {
        "fineweb": {"enabled": False},
        "gopher_repetition": {"max_dup_line_char_frac": 1.0},
    }


def _top_ngram_doc(seed: int, gram: list[str], lo: float, hi: float, stat: str):
    g = Gen(seed)
    core = []
    for _ in range(12):
        w = g.words(6)
        core.append(f"{w[0].capitalize()} {w[1]} {' '.join(gram)} {w[2]} the {w[3]} of {w[4]} and {w[5]}.")

    def build(n):
        filler = Gen(seed + 1000)
        sents = core + [filler.sentence() for _ in range(n)]
        return "\n\n".join(" ".join(sents[i:i + 3]) for i in range(0, len(sents), 3))

    return fit(build, stat, lo, hi)


def doc_gopher_top_2gram():
    g = Gen(15)
    lines = []
    for _ in range(6):
        w = g.words(8)
        lines.append(f"{w[0].capitalize()} {w[1]} solar panels {w[2]} the {w[3]} solar panels {w[4]} "
                     f"of {w[5]} and {w[6]} {w[7]}.")
    return "\n\n".join(lines), None


def doc_gopher_top_3gram():
    return _top_ngram_doc(16, ["red", "kite", "conservation"], 0.18, 0.20, "top_3gram_char_frac"), None


def doc_gopher_top_4gram():
    return _top_ngram_doc(17, ["big", "red", "kite", "conservation"], 0.16, 0.18, "top_4gram_char_frac"), None


_DUP_LIMITS = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


def _dup_ngram_doc(n: int):
    """Distinct n-word chunks, each inserted twice between unique words."""
    g = Gen(100 + n)
    chunks = [g.words(n) for _ in range(4)]
    sents = []
    for chunk in chunks + chunks:
        w = g.words(4)
        sents.append(f"{w[0].capitalize()} the {w[1]} {' '.join(chunk)} {w[2]} of {w[3]}.")
    hi = 1.0 if n == 5 else _DUP_LIMITS[n - 1]

    def build(k):
        filler = Gen(200 + n)
        allsents = sents + [filler.sentence() for _ in range(k)]
        return "\n\n".join(" ".join(allsents[i:i + 3]) for i in range(0, len(allsents), 3))

    return fit(build, f"dup_{n}gram_char_frac", _DUP_LIMITS[n], hi)


def _base(seed: int) -> str:
    return Gen(seed).prose(4)


def doc_c4_lorem_ipsum():
    return _base(21) + "\n\nLorem ipsum dolor sit amet, consectetur adipiscing elit.", None


def doc_c4_curly_bracket():
    return _base(22) + "\n\nThe {name} of the file goes here and there.", None


def doc_c4_bad_words():
    return _base(23) + "\n\nThe quux FLERB of the day is on the table.", None


def doc_c4_min_sentences():
    g = Gen(25)
    return "\n\n".join(g.sentence(16) for _ in range(4)), None  # 64 words, 4 sentences


def doc_fineweb_line_punct():
    g = Gen(26)
    lines = [g.line(8)]  # one long punctuated paragraph ...
    for _ in range(9):  # ... and nine unpunctuated lines longer than 30 characters
        w = g.words(4)
        lines.append(f"Latest from the {w[0]} {w[1]} of {w[2]} {w[3]}")
    return "\n".join(lines), None


def doc_fineweb_short_lines():
    g = Gen(27)
    lines = [g.sentence(6, syllables=2) for _ in range(8)] + [g.line(3), g.line(3)]
    return "\n".join(lines), None  # 8 of 10 lines are at most 30 characters


def doc_fineweb_dup_line_chars():
    g = Gen(28)  # as _four_word_repeats, with three repeated lines: fraction ~0.14
    reps = [" ".join(w.capitalize() for w in g.words(4, syllables=5)) + "." for _ in range(3)]
    lines = []
    for rep in reps + reps:
        lines.append(g.sentence())
        lines.append(rep)
    lines += [g.sentence() for _ in range(4)]
    return "\n".join(lines), None


def doc_fineweb_newline_ratio():
    g = Gen(29)
    return "\n\n\n\n\n\n".join(g.sentence() for _ in range(8)), None  # 6 newlines per 10 words


# --- Chinese -----------------------------------------------------------------
_HANZI = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子"
    "说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机"
    "当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心"
)


class ZhGen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def words(self, n: int, size: int = 2) -> list[str]:
        return ["".join(self.rng.choice(_HANZI) for _ in range(size)) for _ in range(n)]

    def sentence(self, n: int = 8, size: int = 2) -> list[str]:
        """Words of one sentence: two clauses, a comma and a full stop as tokens."""
        w = self.words(n, size)
        h = n // 2
        return [*w[:h], "，", *w[h:], "。"]


def zh_doc(lines: list[list[str]]) -> tuple[str, str]:
    """(text, seg) from lines given as token lists."""
    return "\n".join("".join(toks) for toks in lines), " ".join(t for toks in lines for t in toks)


def zh_prose(seed: int, n_lines: int = 4, per_line: int = 3):
    z = ZhGen(seed)
    return [[t for _ in range(per_line) for t in z.sentence()] for _ in range(n_lines)]


def doc_zh_min_chars():
    z = ZhGen(40)  # 56 one-character words: enough words, too few characters
    toks = [t for _ in range(4) for t in z.sentence(14, size=1)]
    return zh_doc([toks])


def doc_zh_cjk_ratio():
    z = ZhGen(41)
    g = Gen(41)
    lines = []
    for _ in range(5):
        w = z.words(4)
        latin = [x.upper() for x in g.words(6)]
        lines.append([w[0], latin[0], latin[1], w[1], latin[2], latin[3], "，", w[2], latin[4], latin[5], w[3], "。"])
    return zh_doc(lines)


def doc_zh_line_punct():
    z = ZhGen(42)  # long lines with commas only, no sentence end
    lines = []
    for _ in range(5):
        w = z.words(12)
        lines.append([*w[:6], "，", *w[6:]])
    return zh_doc(lines)


def doc_zh_dup_lines():
    lines = zh_prose(43, n_lines=6, per_line=1)
    rep = lines[0]
    return zh_doc(lines + [rep, rep, rep])  # 3 of 9 lines repeat the first


def doc_zh_boilerplate_lines():
    nav = [["首页"], ["新闻"], ["体育"], ["财经"], ["科技"], ["登录"], ["注册"], ["返回", "顶部"], ["更多"]]
    return zh_doc(nav + zh_prose(44, n_lines=11, per_line=1))  # 9 of 20 lines


def doc_zh_min_words():
    z = ZhGen(45)  # 120 characters in 4-character words: 30 words
    lines = [[*z.words(6, size=4), "，", *z.words(6, size=4), "。"] for _ in range(2)]
    return zh_doc(lines)


def _en_case(fn):
    text, overrides = fn()
    return text, "en", None, overrides


def _zh_case(fn):
    text, seg = fn()
    return text, "zh", seg, None


CASES = {
    "gopher_min_words": lambda: _en_case(doc_gopher_min_words),
    "gopher_max_words": lambda: _en_case(doc_gopher_max_words),
    "gopher_mean_word_length": lambda: _en_case(doc_gopher_mean_word_length),
    "gopher_mean_word_length/long": lambda: _en_case(doc_gopher_mean_word_length_long),
    "gopher_hash_ratio": lambda: _en_case(doc_gopher_hash_ratio),
    "gopher_ellipsis_ratio": lambda: _en_case(doc_gopher_ellipsis_ratio),
    "gopher_bullet_lines": lambda: _en_case(doc_gopher_bullet_lines),
    "gopher_ellipsis_lines": lambda: _en_case(doc_gopher_ellipsis_lines),
    "gopher_alpha_words": lambda: _en_case(doc_gopher_alpha_words),
    "gopher_stop_words": lambda: _en_case(doc_gopher_stop_words),
    "gopher_dup_lines": lambda: _en_case(doc_gopher_dup_lines),
    "gopher_dup_paragraphs": lambda: _en_case(doc_gopher_dup_paragraphs),
    "gopher_dup_line_chars": lambda: _en_case(doc_gopher_dup_line_chars),
    "gopher_dup_paragraph_chars": lambda: _en_case(doc_gopher_dup_paragraph_chars),
    "gopher_top_2gram": lambda: _en_case(doc_gopher_top_2gram),
    "gopher_top_3gram": lambda: _en_case(doc_gopher_top_3gram),
    "gopher_top_4gram": lambda: _en_case(doc_gopher_top_4gram),
    **{f"gopher_dup_{n}gram": (lambda n=n: (_dup_ngram_doc(n), "en", None, None)) for n in range(5, 11)},
    "c4_lorem_ipsum": lambda: _en_case(doc_c4_lorem_ipsum),
    "c4_curly_bracket": lambda: _en_case(doc_c4_curly_bracket),
    "c4_bad_words": lambda: _en_case(doc_c4_bad_words),
    "c4_min_sentences": lambda: _en_case(doc_c4_min_sentences),
    "fineweb_line_punct": lambda: _en_case(doc_fineweb_line_punct),
    "fineweb_short_lines": lambda: _en_case(doc_fineweb_short_lines),
    "fineweb_dup_line_chars": lambda: _en_case(doc_fineweb_dup_line_chars),
    "fineweb_newline_ratio": lambda: _en_case(doc_fineweb_newline_ratio),
    "zh_min_chars": lambda: _zh_case(doc_zh_min_chars),
    "zh_cjk_ratio": lambda: _zh_case(doc_zh_cjk_ratio),
    "zh_line_punct": lambda: _zh_case(doc_zh_line_punct),
    "zh_dup_lines": lambda: _zh_case(doc_zh_dup_lines),
    "zh_boilerplate_lines": lambda: _zh_case(doc_zh_boilerplate_lines),
    "zh_min_words": lambda: _zh_case(doc_zh_min_words),
}


@functools.cache
def built(case: str):
    """(text, lang, seg, config overrides) of a case, built once per test session."""
    return CASES[case]()


# ---------------------------------------------------------------------------
# Every rule fails alone; a real article passes everything
# ---------------------------------------------------------------------------
def test_every_reason_code_has_a_rule_alone_case():
    assert {case.split("/")[0] for case in CASES} == EXPECTED_CODES


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_fails_alone(case):
    code = case.split("/")[0]
    text, lang, seg, overrides = built(case)
    cfg = QualityConfig.model_validate(overrides or {})
    stats = document_stats(text, lang, seg, cfg=cfg, bad_words=BAD_WORDS)
    assert all_failures(stats, lang, cfg) == [code], {k: v for k, v in stats.items() if not math.isnan(v)}
    assert first_failure(stats, lang, cfg) == code


def test_dominated_rules():
    """Under the defaults the two char-fraction rules above cannot fail alone."""
    cfg = QualityConfig()
    text, _ = doc_gopher_dup_line_chars()
    assert failures(text, cfg=cfg) == ["gopher_dup_line_chars", "fineweb_dup_line_chars"]
    text, _ = doc_gopher_dup_paragraph_chars()
    got = failures(text, cfg=cfg)
    assert got[0] == "gopher_dup_line_chars" and "gopher_dup_paragraph_chars" in got


def test_real_bbc_article_passes_every_rule():
    doc = load("en_bbc_news")[0]
    assert failures(doc["text"]) == []
    assert first_failure(document_stats(doc["text"], "en"), "en", QualityConfig()) is None


def test_real_zh_wiki_paragraph_passes_every_rule():
    doc = load("zh_wiki")[0]
    assert failures(doc["text"], "zh", seg=doc["seg"]) == []


def test_constructed_base_documents_pass():
    assert failures(_base(99)) == []
    text, seg = zh_doc(zh_prose(99))
    assert failures(text, "zh", seg=seg) == []


# ---------------------------------------------------------------------------
# Reason codes and the rule table
# ---------------------------------------------------------------------------
def test_reason_codes_are_stable():
    codes = reason_codes()
    assert set(codes) == EXPECTED_CODES
    assert list(codes) == list(dict.fromkeys(r.code for r in RULES))  # rule order
    assert all(desc and "\n" not in desc for desc in codes.values())


def test_rule_table_is_consistent():
    cfg = QualityConfig()
    for r in RULES:
        assert r.stat in STAT_NAMES, r
        assert r.op in ("min", "max", "flag"), r
        value = getattr(getattr(cfg, r.ruleset), r.attr)
        assert isinstance(value, bool) if r.op == "flag" else not isinstance(value, bool), r
        assert r.citation, r
        assert r.code.startswith("zh_") == (r.ruleset == "chinese"), r


def test_first_failure_follows_table_order():
    text = "lorem ipsum {x} " * 3  # few words, placeholder text, curly bracket, no sentences ...
    stats = document_stats(text, "en")
    fails = all_failures(stats, "en", QualityConfig())
    order = [r.code for r in RULES]
    assert fails == sorted(fails, key=order.index)
    assert first_failure(stats, "en", QualityConfig()) == fails[0] == "gopher_min_words"
    assert {"c4_lorem_ipsum", "c4_curly_bracket", "c4_min_sentences"} <= set(fails)


def test_document_stats_shape():
    en = document_stats("Hello world.", "en")
    zh = document_stats("你好，世界。", "zh", "你好 ， 世界 。")
    for stats in (en, zh):
        assert list(stats) == list(STAT_NAMES)
        assert all(isinstance(v, float) for v in stats.values())
    assert math.isnan(en["zh_n_chars"]) and not math.isnan(en["n_words"])
    assert math.isnan(zh["n_words"]) and zh["zh_n_words"] == 2.0  # punctuation tokens are not words
    assert document_stats("", "en")["n_words"] == 0.0
    assert first_failure(document_stats("", "en"), "en", QualityConfig()) == "gopher_min_words"
    assert first_failure(document_stats("", "zh"), "zh", QualityConfig()) == "zh_min_chars"


def test_seg_none_falls_back_to_cjk_characters():
    text, seg = zh_doc(zh_prose(50))
    with_seg = document_stats(text, "zh", seg)
    without = document_stats(text, "zh", None)
    assert without["zh_n_words"] == sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    assert without["zh_n_words"] > with_seg["zh_n_words"]


def test_chinese_language_tags():
    assert all(map(is_chinese, ["zh", "ZH", "zh-CN", "zh_Hant", "zh-TW"]))
    assert not any(map(is_chinese, [None, "", "en", "zu", "zha"]))


def test_word_rules_never_applied_to_chinese():
    cfg = QualityConfig()
    text, seg = zh_doc(zh_prose(51))
    for lang in ("zh", "zh-CN"):
        assert all(c.startswith("zh_") for c in all_failures(document_stats("短", lang), lang, cfg))
    # the same Chinese text judged as English fails word rules, as zh it passes
    assert failures(text, "en")
    assert failures(text, "zh", seg=seg) == []


def test_stats_from_the_other_family_are_refused():
    stats = document_stats("Some English text.", "en")
    with pytest.raises(ValueError, match="other language family"):
        first_failure(stats, "zh", QualityConfig())


def test_stat_defining_lengths_must_match_the_config():
    cfg = QualityConfig.model_validate({"fineweb": {"short_line_chars": 40}})
    g = Gen(52)
    text = "\n".join(g.sentence(6, syllables=2) for _ in range(10))  # lines of 25-35 characters
    with pytest.raises(ValueError, match="short_line_chars"):
        first_failure(document_stats(text, "en"), "en", cfg)
    stats = document_stats(text, "en", cfg=cfg)
    assert stats["short_line_frac"] == 1.0
    assert "fineweb_short_lines" in all_failures(stats, "en", cfg)


def test_thresholds_retune_without_recomputing():
    text, _ = doc_c4_min_sentences()
    stats = document_stats(text, "en")
    assert first_failure(stats, "en", QualityConfig()) == "c4_min_sentences"
    relaxed = QualityConfig.model_validate({"c4": {"min_sentences": 4}})
    assert first_failure(stats, "en", relaxed) is None


# ---------------------------------------------------------------------------
# Statistics agree with a brute-force reference
# ---------------------------------------------------------------------------
def _reference_ngram_stats(text: str) -> dict[str, float]:
    words = [w for w in (t.strip(WORD_STRIP) for t in text.lower().split()) if w]
    total = sum(map(len, words))
    out = {}
    for n in range(2, 11):
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(grams)
        if n <= 4:
            top = max(counts.values(), default=0)
            out[f"top_{n}gram_char_frac"] = (
                top * max(sum(map(len, g)) for g in counts if counts[g] == top) / total if top > 1 else 0.0
            )
        else:
            covered = [False] * len(words)
            for i, gram in enumerate(grams):
                if counts[gram] > 1:
                    covered[i:i + n] = [True] * n
            out[f"dup_{n}gram_char_frac"] = (
                sum(len(w) for w, c in zip(words, covered) if c) / total if total else 0.0
            )
    return out


def test_ngram_statistics_match_brute_force():
    rng = random.Random(7)
    vocab = ["a", "bb", "the", "of", "ccc", "Dd,", "e."]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 80))) for _ in range(300)]
    texts += [d["text"] for d in load("en_bbc_news")[:10] + load("en_webtext")[:10]]
    for text in texts:
        stats = document_stats(text, "en")
        for key, want in _reference_ngram_stats(text).items():
            assert stats[key] == pytest.approx(want, abs=1e-12), (key, text[:80])


def test_line_and_paragraph_duplicates():
    text = "Alpha beta gamma.\n\nAlpha beta gamma.\n  \nDelta epsilon.\nAlpha beta gamma.\n"
    s = document_stats(text, "en")
    # lines: A, A, D, A -> 2 repeats of 4; paragraphs: "A", "A", "D\nA" -> 1 repeat of 3
    assert s["dup_line_frac"] == 0.5
    assert s["dup_para_frac"] == pytest.approx(1 / 3)
    assert s["dup_line_char_frac"] == pytest.approx(34 / (17 * 3 + 14))


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        {"gopher": {}},  # unknown section
        {"gopher_quality": {"min_word": 10}},  # unknown key (typo)
        {"c4": {"min_sentences": -1}},  # negative count
        {"fineweb": {"min_line_punct_frac": -0.1}},  # fraction below 0
        {"chinese": {"max_boilerplate_line_frac": float("nan")}},
        {"gopher_quality": {"min_words": 200, "max_words": 100}},  # min > max
        {"gopher_quality": {"min_mean_word_length": 12.0}},  # min > default max 10
        {"gopher_quality": {"min_words": "50"}},  # wrong type
        {"c4": {"enabled": "no"}},  # wrong type
        {"fineweb": {"short_line_chars": 0}},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(pydantic.ValidationError):
        QualityConfig.model_validate(bad)


def test_config_error_names_the_key_path():
    with pytest.raises(pydantic.ValidationError) as err:
        QualityConfig.model_validate({"gopher_repetition": {"max_top_2gram_char_frac": 2}})
    assert "gopher_repetition.max_top_2gram_char_frac" in str(err.value)


def test_config_defaults_are_the_published_values():
    cfg = QualityConfig()
    gq, gr, fw = cfg.gopher_quality, cfg.gopher_repetition, cfg.fineweb
    assert (gq.min_words, gq.max_words, gq.min_mean_word_length, gq.max_mean_word_length) == (50, 100_000, 3, 10)
    assert (gq.max_hash_ratio, gq.max_ellipsis_ratio) == (0.1, 0.1)
    assert (gq.max_bullet_lines, gq.max_ellipsis_lines) == (0.9, 0.3)
    assert (gq.min_alpha_words, gq.min_stop_words) == (0.8, 2)
    assert (gr.max_dup_line_frac, gr.max_dup_para_frac, gr.max_dup_line_char_frac, gr.max_dup_para_char_frac) == (
        0.3, 0.3, 0.2, 0.2)
    assert [getattr(gr, f"max_top_{n}gram_char_frac") for n in (2, 3, 4)] == [0.20, 0.18, 0.16]
    assert [getattr(gr, f"max_dup_{n}gram_char_frac") for n in range(5, 11)] == [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    assert cfg.c4.min_sentences == 5
    assert (fw.min_line_punct_frac, fw.max_short_line_frac, fw.short_line_chars) == (0.12, 0.67, 30)
    assert (fw.max_dup_line_char_frac, fw.max_newline_word_ratio) == (0.1, 0.3)


@pytest.mark.parametrize("ruleset", ["gopher_quality", "gopher_repetition", "c4", "fineweb", "chinese"])
def test_disabling_a_rule_set_stops_its_reasons(ruleset):
    codes = {r.code for r in RULES if r.ruleset == ruleset}
    cfg_off = QualityConfig.model_validate({ruleset: {"enabled": False}})
    hit = 0
    for case in CASES:
        text, lang, seg, overrides = built(case)
        cfg_on = QualityConfig.model_validate(overrides or {})
        cfg = cfg_on.model_copy(update={ruleset: getattr(cfg_off, ruleset)})
        stats = document_stats(text, lang, seg, cfg=cfg_on, bad_words=BAD_WORDS)
        before = set(all_failures(stats, lang, cfg_on))
        after = set(all_failures(stats, lang, cfg))
        assert not after & codes
        assert after == before - codes
        hit += bool(before & codes)
    assert hit  # at least one case exercised this rule set


def test_flag_switches():
    text, _ = doc_c4_lorem_ipsum()
    cfg = QualityConfig.model_validate({"c4": {"lorem_ipsum": False}})
    assert failures(text, cfg=cfg) == []
    text, _ = doc_c4_curly_bracket()
    cfg = QualityConfig.model_validate({"c4": {"curly_bracket": False}})
    assert failures(text, cfg=cfg) == []


def test_bad_words_need_a_list_and_match_whole_words():
    text, _ = doc_c4_bad_words()
    assert failures(text) == ["c4_bad_words"]
    assert all_failures(document_stats(text, "en"), "en", QualityConfig()) == []  # no list configured
    assert failures(text, cfg=QualityConfig.model_validate({"c4": {"bad_words": False}})) == []
    inside = _base(23) + "\n\nThe xqzzyfoo of the day is on the table."  # the listed word inside another word
    assert failures(inside) == []
    assert bad_words_pattern(["", "  "]) is None


@pytest.mark.parametrize("text, n", [
    ("U.S. Nov. Mr. J. R. R. Tolkien wrote it.", 1),
    ("Dr. Smith met Mrs. Jones in Nov. 2004 in the U.S. and they talked.", 1),
    ("It costs approx. 5 dollars, e.g. at the shop. Then it rained.", 2),
    ("He came home. She left! Did they? \"Yes.\" The end", 5),
])
def test_sentence_count_ignores_abbreviations_and_initials(text, n):
    assert count_sentences(text) == n


def _sentences_by_word_regex(text: str) -> int:
    """The specification of count_sentences as a single regex that matches each candidate with the word it ends
    (a lazy non-space prefix), which count_sentences replaced for speed."""
    candidate = re.compile(r"(\S*?)([.!?]+)[\"'”’)\]]*(?=\s|$)")
    n = last_end = 0
    for m in candidate.finditer(text):
        if m.group(2) == "." and _is_abbreviation(m.group(1)):
            continue
        nxt = _NEXT_WORD.match(text, m.end())
        if nxt and (nxt.group(1).islower() or nxt.group(1).isdigit()):
            continue
        n += 1
        last_end = m.end()
    return n + (1 if text[last_end:].strip() else 0)


def test_sentence_count_equals_the_word_regex_specification():
    """On every fixture line and on 20,000 random strings of marks, quotes, brackets, white space (tab, no-break,
    ideographic), abbreviations, initials and digits."""
    files = sorted((Path(__file__).parent / "fixtures" / "quality").glob("*.jsonl"))
    texts = [json.loads(line)["text"] for path in files
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(0)
    alphabet = [*"ab .!?\"'”’)]([“‘ \t\u3000\xa0J1\n", "Mr", "Dr", "etc", "U.S.", "e.g.", "x"]
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(20_000)]
    cases = [line for t in texts for line in t.split("\n")] + texts + fuzz
    assert [count_sentences(t) for t in cases] == [_sentences_by_word_regex(t) for t in cases]


def _fixture_texts() -> list[tuple[str, str]]:
    """(text, lang) of every quality fixture document: English and Chinese."""
    files = sorted((Path(__file__).parent / "fixtures" / "quality").glob("*.jsonl"))
    return [(json.loads(line)["text"], path.name[:2]) for path in files
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_alpha_word_fraction_is_the_share_of_tokens_with_a_letter():
    """Gopher's "words with an alphabetic character" (a letter: a word character but a digit or "_"), token by
    token, on the fixtures and 5,000 random strings of
    letters, digits, underscores, punctuation, accents, ideographs and white space (tab, no-break, ideographic,
    line separator, information separator)."""
    rng = random.Random(1)
    alphabet = list("ab1_.,!? \t\n\u3000\xa0\x1c\u2028é中-")
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25))) for _ in range(5_000)]
    for text in [t for t, _ in _fixture_texts()] + fuzz:
        tokens = text.split()
        want = sum(bool(re.search(r"[^\W\d_]", t)) for t in tokens) / len(tokens) if tokens else 0.0
        assert document_stats(text, "en")["alpha_word_frac"] == pytest.approx(want), text


def test_first_failures_equal_first_failure_per_document():
    cfg = QualityConfig()
    docs = _fixture_texts()
    stats = [document_stats(t, lang, cfg=cfg) for t, lang in docs]
    langs = [lang for _, lang in docs]
    want = [first_failure(s, lang, cfg) for s, lang in zip(stats, langs)]
    assert first_failures(stats, langs, cfg) == want
    assert {w is None for w in want} == {True, False} and len({lang for lang in langs}) == 2


def test_c4_sentences_counted_per_line():
    g = Gen(30)
    four = "\n".join(g.sentence(12) for _ in range(4))
    assert document_stats(four, "en")["c4_n_sentences"] == 4
    # abbreviations added to every line do not add sentences
    abbreviated = "\n".join(f"Mr. J. R. Tolkien of the U.S. said in Nov. that {g.sentence(12)}" for _ in range(4))
    assert document_stats(abbreviated, "en")["c4_n_sentences"] == 4
    # a line without terminal punctuation is one sentence, as Punkt counts it
    assert document_stats(four + "\nA line without an end", "en")["c4_n_sentences"] == 5


# ---------------------------------------------------------------------------
# Real fixtures (samples of /work/shared/data/corpus; fractions measured on the
# full sets are in the comments, the bounds sit a little below the sample's)
# ---------------------------------------------------------------------------
def _decide(name: str, lang: str) -> list[str | None]:
    cfg = QualityConfig()
    return [first_failure(document_stats(d["text"], lang, d.get("seg")), lang, cfg) for d in load(name)]


def test_bbc_news_mostly_passes():
    reasons = _decide("en_bbc_news", "en")  # sample: 30/30 pass; full set 2205/2225 = 0.991
    assert sum(r is None for r in reasons) / len(reasons) >= 0.9


def test_webtext_wine_notes_fail():
    docs = load("en_webtext")
    reasons = _decide("en_webtext", "en")
    # Wine tasting notes (no line ends in punctuation) fail FineWeb's line-punctuation rule: full set 88/90 with
    # the line rules applied first (bench/quality_rules.py).  The page rules keep the punctuated dialogue
    # (overheard, film scripts); Firefox bug titles pass when more than 12% of their lines end in punctuation
    # (296/667), as in FineWeb's published pipeline, and fail once C4's terminal-punctuation rule is on
    # (tests/test_lines.py).
    wine = [r for d, r in zip(docs, reasons) if d["id"].split("/")[1] == "wine"]
    assert wine and all(r == "fineweb_line_punct" for r in wine)
    dialogue = [r for d, r in zip(docs, reasons) if d["id"].split("/")[1] in ("overheard", "pirates", "grail")]
    assert sum(r is None for r in dialogue) / len(dialogue) >= 0.9


def test_zh_wiki_mostly_passes():
    reasons = _decide("zh_wiki", "zh")  # sample 25/25 pass; full set 1102/1104 = 0.998
    assert sum(r is None for r in reasons) / len(reasons) >= 0.9


def test_zh_web_pages_without_line_cleaning_fail_zh_rules():
    """Uncleaned, a news page's menu lines fail it (the lines stage removes them first: tests/test_lines.py)."""
    reasons = _decide("zh_web_pages", "zh")  # sample: 6 of 8 removed
    assert sum(r is not None for r in reasons) / len(reasons) >= 0.6
    cfg = QualityConfig()
    for d in load("zh_web_pages"):
        fails = all_failures(document_stats(d["text"], "zh", d["seg"]), "zh", cfg)
        assert all(c.startswith("zh_") for c in fails), fails


def test_zh_punctuation_variants_count_after_nfkc():
    z = ZhGen(60)
    for mark in ("？", "﹖", "！", "﹗", "；", "﹔", "。", "｡"):
        lines = [[*z.words(12), mark] for _ in range(6)]
        text, seg = zh_doc(lines)
        stats = document_stats(text, "zh", seg)
        assert stats["zh_line_punct_frac"] == 1.0, mark
        assert "zh_line_punct" not in all_failures(stats, "zh", QualityConfig())


def test_zh_headline_lines_do_not_count_against_line_punctuation():
    z = ZhGen(61)
    body = zh_prose(61, n_lines=3)
    headlines = [z.words(8) for _ in range(5)]  # 16 characters, no sentence end
    text, seg = zh_doc(headlines + body)
    stats = document_stats(text, "zh", seg)
    assert stats["zh_line_punct_frac"] == 1.0
    assert first_failure(stats, "zh", QualityConfig()) is None
    # the same lines longer than headline_chars do count
    cfg = QualityConfig.model_validate({"chinese": {"headline_chars": 12}})
    stats = document_stats(text, "zh", seg, cfg=cfg)
    assert stats["zh_line_punct_frac"] == 3 / 8
    assert first_failure(stats, "zh", cfg) == "zh_line_punct"
    with pytest.raises(ValueError, match="headline_chars"):
        first_failure(document_stats(text, "zh", seg), "zh", cfg)


def test_zh_hotel_reviews_pass_when_long_enough():
    """Documented choice: reviews shorter than Gopher's 50 words (as jieba words) fail."""
    cfg = QualityConfig()
    long_ok = long_n = 0
    for d in load("zh_hotel_reviews"):
        stats = document_stats(d["text"], "zh", d["seg"])
        reason = first_failure(stats, "zh", cfg)
        if stats["zh_n_words"] < 50:
            assert reason in ("zh_min_chars", "zh_min_words"), (reason, d["text"])
        else:
            long_n += 1
            long_ok += reason is None
    # full set: 3553 reviews with 50+ words, 97% pass
    assert long_n and long_ok / long_n >= 0.9


def test_quality_stage_reads_a_bad_word_list(tmp_path):
    import polars as pl

    from corpusslim.stages.quality import QualityStage, QualityStageConfig

    (tmp_path / "words.txt").write_text("xqzzy\nquux flerb\n", encoding="utf-8")
    cfg = QualityStageConfig.model_validate({"kind": "quality", "bad_words_file": "words.txt"},
                                            context={"base": str(tmp_path)})
    text, _ = doc_c4_bad_words()
    batch = pl.DataFrame({"id": ["a", "b"], "text": [text, _base(23)], "lang": ["en", "en"]})
    assert QualityStage(cfg).annotate(batch)["quality_reason"].to_list() == ["c4_bad_words", None]
    assert QualityStage(QualityStageConfig()).annotate(batch)["quality_reason"].to_list() == [None, None]
    with pytest.raises(pydantic.ValidationError, match="no such file"):
        QualityStageConfig.model_validate({"kind": "quality", "bad_words_file": "missing.txt"},
                                          context={"base": str(tmp_path)})
