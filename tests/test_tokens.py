"""o200k_base token counts, including documents longer than the tokenizer accepts in one call."""
from corpusslim.runtime.resources import TOKENIZER_PIECE, count_tokens


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
    """Repetitive text passes bpe-openai's 200,000-token limit well under its character limit."""
    text = "1 2 3 4 5 6 7 8 9 " * 20_000  # 360,000 characters, 360,000 tokens
    assert count_tokens([text]) == [2 * sum(count_tokens([text[:180_000]]))]
