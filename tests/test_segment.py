"""Tests for corpusslim.filters.segment (jieba's words from the rjieba or jieba kernel; SIGHAN scoring).

Offline: uses only tests/fixtures (the first 80 lines of the SIGHAN 2005 PKU
test set and its gold segmentation, see the README in cws/, and every other
fixture text for the kernel comparison).
"""

from __future__ import annotations

import json
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jieba
import pytest

from corpusslim.filters import segment
from corpusslim.filters.segment import Segmenter, sighan_score

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "cws"
jieba.setLogLevel(30)
THREADS = 8

# Texts with whitespace of several kinds (PKU lines have none), mixed scripts.
WHITESPACE_TEXTS = [
    "",
    "   ",
    "我爱 北京\t天安门\r\n天安门上太阳升",
    "  Python 3.11 发布了，  下载地址见官网\u3000（免费）\n",
    "GDP增长7.5%，hello world  2024年",
]


@pytest.fixture(scope="module")
def pku() -> tuple[list[str], list[list[str]]]:
    raw = (FIXTURES / "pku_test.utf8").read_text(encoding="utf-8").splitlines()
    gold = [line.split() for line in (FIXTURES / "pku_test_gold.utf8").read_text(encoding="utf-8").splitlines()]
    assert len(raw) == len(gold) == 80
    return raw, gold


def bare(text: str, hmm: bool) -> list[str]:
    return [w for w in jieba.lcut(text, HMM=hmm) if not w.isspace()]


def test_the_default_mode_scores_at_least_as_well_as_the_other_on_pku(pku):
    """The default (HMM off) is chosen for its F1 on PKU (0.836 vs 0.818 on the whole test set,
    bench/cws_pku.py); on the fixture's 80 lines it must not score worse than HMM on."""
    raw, gold = pku
    default, other = Segmenter(), Segmenter(hmm=not Segmenter().hmm)
    f1 = {name: sighan_score([line.split() for line in seg.segment(raw)], gold)["f1"]
          for name, seg in (("default", default), ("other", other))}
    assert f1["default"] >= f1["other"] > 0.5


@pytest.mark.parametrize("hmm", [False, True])
def test_same_words_as_jieba_lcut(pku, hmm):
    raw, _ = pku
    texts = raw + WHITESPACE_TEXTS
    seg = Segmenter(hmm=hmm)
    out = seg.segment(texts)
    assert len(out) == len(texts)
    for text, line in zip(texts, out):
        expected = bare(text, hmm)
        assert seg.words(text) == expected
        assert line == " ".join(expected)


@pytest.mark.parametrize("hmm", [False, True])
def test_output_format(pku, hmm):
    raw, _ = pku
    texts = raw + WHITESPACE_TEXTS
    for text, line in zip(texts, Segmenter(hmm=hmm).segment(texts)):
        assert isinstance(line, str)
        if not "".join(text.split()):
            assert line == ""
            continue
        words = line.split(" ")
        assert all(words), f"empty word (double/leading/trailing space) in {line!r}"
        assert not any(ch.isspace() for w in words for ch in w)
        assert "".join(words) == "".join(text.split())


def test_segment_accepts_any_sequence():
    seg = Segmenter()
    assert seg.segment(()) == []
    assert seg.segment(("我爱北京天安门",)) == seg.segment(["我爱北京天安门"])


@pytest.mark.parametrize("hmm", [False, True])
def test_user_dict_joins_a_split_word(pku, tmp_path, hmm):
    raw, gold = pku
    line = raw[41]
    name = "扎西次仁"  # a Tibetan personal name; jieba cuts 扎西/次/仁 (HMM off) or 扎西/次仁 (HMM on)
    assert name in line and name in gold[41]
    assert name not in bare(line, hmm)
    assert name not in Segmenter(hmm=hmm).words(line)

    udict = tmp_path / "user_dict.txt"
    udict.write_text(f"{name}\n", encoding="utf-8")
    with_dict = Segmenter(hmm=hmm, user_dict=str(udict))
    words = with_dict.words(line)
    assert name in words
    assert name in with_dict.segment([line])[0].split(" ")
    assert "".join(words) == line
    # The user dictionary stays private: jieba's global tokenizer and
    # Segmenters without it are unaffected.
    assert name not in bare(line, hmm)
    assert name not in Segmenter(hmm=hmm).words(line)


def fixture_texts() -> list[str]:
    """Every text of the test fixtures: PKU lines, the quality and MinHash documents, the LID sentences."""
    texts = (FIXTURES / "pku_test.utf8").read_text(encoding="utf-8").splitlines()
    for path in sorted((ROOT / "tests" / "fixtures").rglob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts + WHITESPACE_TEXTS


def test_fast_kernel_gives_jiebas_words_on_every_fixture_text():
    texts = fixture_texts()
    seg = Segmenter()
    assert seg.kernel == "rjieba"
    fast = [seg.words(t) for t in texts]
    reference = [bare(t, hmm=False) for t in texts]
    differing = [t[:60] for t, f, r in zip(texts, fast, reference) if f != r]
    assert not differing, f"{len(differing)}/{len(texts)} texts segmented differently: {differing[:3]}"
    assert len(texts) > 400 and sum(map(len, reference)) > 50_000  # the comparison covered real text


@pytest.mark.parametrize("hmm", [False, True])
def test_user_dict_and_hmm_use_jieba_itself(pku, tmp_path, hmm):
    raw, _ = pku
    udict = tmp_path / "user_dict.txt"
    udict.write_text("扎西次仁\n北京天安门 5000 ns\n太阳升 3\n", encoding="utf-8")
    reference = jieba.Tokenizer()
    reference.load_userdict(str(udict))
    seg = Segmenter(hmm=hmm, user_dict=udict)
    assert seg.kernel == "jieba" and Segmenter(hmm=True).kernel == "jieba"
    texts = raw + WHITESPACE_TEXTS
    assert [seg.words(t) for t in texts] == [[w for w in reference.lcut(t, HMM=hmm) if not w.isspace()]
                                             for t in texts]
    assert "北京天安门" in seg.words("我爱北京天安门")


def counting_build(monkeypatch) -> list:
    """Replace the kernel cache with an empty one and record every kernel build."""
    monkeypatch.setattr(segment, "_KERNELS", {})
    calls, real_build = [], segment._build
    monkeypatch.setattr(segment, "_build", lambda *key: calls.append(key) or real_build(*key))
    return calls


def test_lazy_init_once_per_process_and_mode(monkeypatch):
    calls = counting_build(monkeypatch)
    seg = Segmenter()
    assert calls == []  # constructing loads nothing
    first = seg.segment(["我爱北京天安门"])
    assert calls == [(False, None)]
    assert seg.segment(["我爱北京天安门"]) == first
    seg.words("今天天气不错")
    # Another instance, or one unpickled in the same worker, shares the kernel.
    pickle.loads(pickle.dumps(Segmenter())).segment(["今天天气不错"])
    assert calls == [(False, None)]
    Segmenter(hmm=True).words("今天天气不错")
    assert calls == [(False, None), (True, None)]


@pytest.mark.parametrize("hmm", [False, True])
def test_first_use_from_many_threads_initialises_once(monkeypatch, pku, hmm):
    raw, _ = pku
    calls = counting_build(monkeypatch)  # a fresh process-wide cache: the threads race to initialise
    barrier = threading.Barrier(THREADS)

    def first_use(_):
        seg = pickle.loads(pickle.dumps(Segmenter(hmm=hmm)))  # as a task unpickles it on a worker
        barrier.wait()
        return seg.segment(raw)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(first_use, range(THREADS)))
    assert calls == [(hmm, None)]
    assert results == [[" ".join(bare(t, hmm)) for t in raw]] * THREADS


def test_pickle_does_not_carry_the_tokenizer():
    seg = Segmenter()
    seg.segment(["初始化"])
    blob = pickle.dumps(seg)
    assert len(blob) < 1000
    clone = pickle.loads(blob)
    assert (clone.hmm, clone.user_dict) == (seg.hmm, seg.user_dict)
    assert clone.segment(["我爱北京天安门"]) == seg.segment(["我爱北京天安门"])


def test_sighan_score_by_hand():
    gold = [["共同", "创造", "美好", "的", "新", "世纪"]]
    pred = [["共同", "创造", "美好的", "新世纪"]]
    s = sighan_score(pred, gold)
    assert (s["correct"], s["predicted"], s["gold"]) == (2, 4, 6)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(0.4)
    assert sighan_score(gold, gold)["f1"] == 1.0
    with pytest.raises(ValueError):
        sighan_score([["共同", "创"]], gold)
    with pytest.raises(ValueError):
        sighan_score(pred + pred, gold)


@pytest.mark.parametrize("hmm", [False, True])
def test_sighan_on_fixture_lines(pku, hmm):
    raw, gold = pku
    bare_score = sighan_score([bare(t, hmm) for t in raw], gold)
    seg_score = sighan_score([line.split() for line in Segmenter(hmm=hmm).segment(raw)], gold)
    assert seg_score == bare_score
    assert seg_score["gold"] == 3028
    for key in ("precision", "recall", "f1"):
        assert 0.7 < seg_score[key] < 0.95, (key, seg_score)
