"""Showing document text to a person: truncated, with control characters escaped (terminals and pages render it
as text, never as escape sequences)."""
from __future__ import annotations

import unicodedata

KEEP = {"\n", "\t"}


def printable(text: str, limit: int | None = None) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis) and every control, format or surrogate character
    other than newline and tab written as a Python escape (``\\x1b``, ``\\u200b``)."""
    cut = text if limit is None or len(text) <= limit else text[:limit]
    out = "".join(ch if ch in KEEP or unicodedata.category(ch) not in ("Cc", "Cf", "Cs") else
                  ch.encode("unicode_escape", "backslashreplace").decode("ascii") for ch in cut)
    return out + ("…" if cut is not text else "")
