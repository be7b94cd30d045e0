"""o200k_base token counts, including documents longer than the tokenizer accepts in one call."""
import json
from pathlib import Path

from corpusslim.runtime.resources import TOKENIZER_PIECE, count_tokens

FIXTURES = Path(__file__).parent / "fixtures"


def test_counts():
    assert count_tokens([None, "", "hello world"]) == [0, 0, 2]


def test_long_document_counted_in_pieces():
    unit = "The committee met on Tuesday to discuss the budget. "
    n = 2 * TOKENIZER_PIECE // len(unit) + 10
    text = unit * n  # over the 1,000,000-character limit of bpe-openai
    assert len(text) >= 1_000_000
    halves = count_tokens([unit * (n // 2), unit * (n - n // 2)])
    assert abs(count_tokens([text])[0] - sum(halves)) <= 3


def test_document_over_the_tokenizers_token_limit_is_counted():
    """Repetitive text over 200,000 tokens (the limit of bpe-openai's Python API, which the binding has not) is
    counted in full."""
    text = "1 2 3 4 5 6 7 8 9 " * 20_000  # 360,000 characters, 360,000 tokens
    assert count_tokens([text]) == [2 * sum(count_tokens([text[:180_000]]))]


def test_counts_equal_bpe_openais_public_api():
    """The binding loaded without the package's __init__ counts what bpe-openai's own API counts, on every quality
    and LID fixture document (English, Chinese, nine languages, line breaks) and on special-token strings, emoji
    and a lone surrogate."""
    import bpe_openai

    files = [*sorted(FIXTURES.glob("quality/*.jsonl")), FIXTURES / "lid_9lang.jsonl"]
    texts = [json.loads(line)["text"] for path in files
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts += ["<|endoftext|> and <|endofprompt|>", "emoji 🙂🚀 and ＦＵＬＬ width", "lone \ud800 surrogate"]
    encode = bpe_openai.get_encoding("o200k_base").encode_ordinary
    assert len(texts) > 100
    assert count_tokens(texts) == [len(encode(t)) for t in texts]
