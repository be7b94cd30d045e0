"""Language ID: the nine languages are labelled right, variants normalise, the script check fixes CJK confusions."""
from __future__ import annotations

import json
from collections import Counter

import polars as pl
import pytest

from corpusslim.filters.langid import LanguageIdentifier, cjk_by_script, normalise
from corpusslim.stages.lid import LidConfig, LidStage
from tests.conftest import FIXTURES

LANGS = ["ar", "de", "en", "es", "fr", "ja", "ko", "ru", "zh"]


@pytest.fixture(scope="module")
def lid() -> LanguageIdentifier:
    return LanguageIdentifier()


@pytest.fixture(scope="module")
def sentences() -> list[dict]:
    with (FIXTURES / "lid_9lang.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_each_language_labelled(lid, sentences):
    sample = [s for s in sentences if not s.get("fasttext_alone_wrong")]
    labels = lid.identify([s["text"] for s in sample]).lang
    right, total = Counter(), Counter()
    for s, label in zip(sample, labels):
        total[s["lang"]] += 1
        right[s["lang"]] += label == s["lang"]
    assert sorted(total) == LANGS
    for lang in LANGS:
        assert right[lang] / total[lang] >= 0.95, (lang, right[lang], total[lang])


def test_combined_fixes_fasttext_errors(lid, sentences):
    """On the sentences fastText alone gets wrong, the stage fixes every Chinese/Japanese/Korean confusion."""
    hard = [s for s in sentences if s.get("fasttext_alone_wrong")]
    result = lid.identify([s["text"] for s in hard])
    cjk = [(s["lang"], label) for s, label in zip(hard, result.lang)
           if s["lang"] in ("zh", "ja", "ko") and cjk_by_script(s["text"])[0]]
    assert len(cjk) >= 10
    assert all(gold == label for gold, label in cjk), cjk
    fixed = sum(s["lang"] == label for s, label in zip(hard, result.lang))
    assert fixed >= len(hard) // 2
    assert set(result.method) >= {"fasttext+script"}


@pytest.mark.parametrize("code, expected", [("__label__zh", "zh"), ("zh-cn", "zh"), ("zh-tw", "zh"), ("ZH_TW", "zh"),
                                            ("iw", "he"), ("__label__en", "en"), ("pt-BR", "pt")])
def test_normalise(code, expected):
    assert normalise(code) == expected


def test_script_shares():
    assert cjk_by_script("京橋創生館で1日とめても安い駐車場！")[0] == "ja"
    assert cjk_by_script("너무 두려워요.")[0] == "ko"
    # A Chinese paragraph quoting a Japanese title stays Chinese.
    text = ("《卡美拉 大怪兽空中决战》（原名：ガメラ 大怪獣空中决戦）"
            "是1995年上映的日本怪兽电影，卡美拉系列电影的第9部作品。")
    assert cjk_by_script(text)[0] == "zh"
    assert cjk_by_script("plain English")[0] is None


def test_short_chinese_with_ascii_punctuation(lid):
    texts = ["隔音太差,值班人员整夜看电视的声音,吵得我一夜未睡,床单有异味不干净,早晨起来身上都是红疹,",
             "房间的整洁及服务都不错,人员的训练及接待都很亲切,入住的感觉也很不错"]
    result = lid.identify(texts)
    assert result.lang == ["zh", "zh"] and min(result.score) >= 0.65


def test_stage_reasons():
    stage = LidStage(LidConfig(languages=["en", "zh-cn"], min_score=0.65))
    batch = pl.DataFrame({"text": [
        "The central bank raised interest rates again on Thursday, citing persistent inflation in services.",
        "中国人民银行周四再次上调利率，理由是服务业通胀持续。",
        "Die Zentralbank hat am Donnerstag die Zinsen erneut angehoben.",
        "#### 2024-01-01 12:00 ####",
    ]})
    kept, rejected = stage.process(batch)
    assert kept["lang"].to_list() == ["en", "zh"]
    reasons = dict(zip(rejected["text"], rejected["reject_reason"]))
    assert reasons[batch["text"][2]] == "lang_not_allowed"
    assert reasons[batch["text"][3]] == "lang_low_confidence"
    assert set(rejected["reject_stage"]) == {"lid"}
    assert set(LidStage.reasons) >= set(rejected["reject_reason"])
