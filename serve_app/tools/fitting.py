"""Fitting a tool's output to its output limit (the executor fails a larger output): the leading
items of a list whose JSON fits a byte budget, measured as the executor measures an output.
Text is cut with `languages.head_within`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from serve_app.tools.declare import Output
from serve_app.tools.languages import encoded_size

T = TypeVar("T")


def size(value: object) -> int:
    """The bytes `value` (an output model, a list of them, or plain JSON data) takes as compact
    JSON."""
    if isinstance(value, Output):
        return encoded_size(value.dump())
    if isinstance(value, list):
        return encoded_size([item.dump() if isinstance(item, Output) else item for item in value])
    return encoded_size(value)


def leading(items: Sequence[T], budget: int) -> list[T]:
    """The first `items` whose JSON array takes at most `budget` bytes (`[]` when none fits)."""
    used = len("[]")
    for index, item in enumerate(items):
        used += size(item) + (1 if index else 0)
        if used > budget:
            return list(items[:index])
    return list(items)
