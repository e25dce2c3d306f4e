"""Fitting a tool's output to its output limit (the executor fails a larger output), measured as
the executor measures an output: as compact JSON. The leading items of a list, the head of a
text, and the usual shape of a command's result (diagnostics, failed tests, output text)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from serve_app.tools.declare import Output

T = TypeVar("T")
TRUNCATION_NOTE = "\n[output truncated]\n"


def encoded_size(value: object) -> int:
    """The size of `value` (plain JSON data) as compact JSON."""
    if value is None:
        return 0
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def size(value: object) -> int:
    """The bytes `value` (an output model, a list of them, or plain JSON data) takes as compact
    JSON."""
    if isinstance(value, Output):
        return len(value.__pydantic_serializer__.to_json(value, exclude_unset=True))
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


def head_within(text: str, budget: int, note: str = TRUNCATION_NOTE) -> str:
    """`text`, or its longest head with `note` appended whose JSON string stays within `budget`
    bytes ("" when not even the note fits). Escapes such as `\\u0000` can make a string's JSON
    several times its UTF-8 size, so the head is found by bisection on the encoded size."""
    if encoded_size(text) <= budget:
        return text
    fits, too_long = 0, len(text)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if encoded_size(text[:middle] + note) <= budget:
            fits = middle
        else:
            too_long = middle
    head = text[:fits] + note
    return head if encoded_size(head) <= budget else ""


SLACK = 256
"""What an output's counts and summary may still grow by after its lists are fitted."""


def room_left(output: Output, limit: int) -> int:
    """How many bytes of `limit` an output's lists may still take, beyond what the rest of it
    (with the lists empty) takes and `SLACK`."""
    return limit - size(output) - SLACK


class CommandResultOutput(Protocol):
    """An output reporting a command: its text, and perhaps diagnostics and failed tests."""

    output: str

    def dump(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=CommandResultOutput)


def fit_command_result(output: R, limit: int) -> R:
    """`output` within `limit` bytes of JSON: its `diagnostics` and `failed_tests` (where it has
    them) keep at most an eighth of the limit each, the command's output text what is left."""
    share = limit // 8
    for name in ("diagnostics", "failed_tests"):
        items = getattr(output, name, None)
        if isinstance(items, list):
            setattr(output, name, leading(items, share))
    if encoded_size(output.dump()) > limit:
        text, output.output = output.output, ""
        output.output = head_within(text, limit - encoded_size(output.dump()))
    return output
