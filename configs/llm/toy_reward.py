"""A toy reward for the tiny CPU config and the tests: a random tiny model can earn it, so groups
have non-zero reward spread and the policy visibly learns (to write digits)."""

from __future__ import annotations

from typing import Any


def digit_fraction(
    prompts: list[str], completions: list[str], **columns: Any
) -> list[float | None]:
    """Share of the completion's characters that are ASCII digits (0.0 for an empty completion)."""
    return [sum(ch in "0123456789" for ch in c) / len(c) if c else 0.0 for c in completions]
