"""Small helpers for user-facing text (CLI lines, logs, reports)."""
from __future__ import annotations

from typing import Optional


def plural(n: int, noun: str, nouns: Optional[str] = None) -> str:
    """``1 frame``, ``2 frames``, ``0 frames`` (``nouns``: an irregular plural)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"
