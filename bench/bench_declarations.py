"""What typed tool declarations cost per call, side by side in one run.

For three argument/output shapes of the catalog (a small one, `fs.stat`; a list, `fs.search`
with 200 matches; a text, `fs.read_file` with 64 KiB of content) it times, round-robin, the
same count each:

  dict     the first version's way: the handler reads a dict and returns a dict;
  typed    the declared way: the raw arguments parsed into the tool's Arguments model, the
           handler's Output model built, encoded once by pydantic's serializer (its size is
           what the output limit bounds) and read back as the reported object
           (`executor.reported`).

and prints the median of each in microseconds and the typed/dict ratio. The tool call around
it (HTTP, policy, records, the file operation) costs milliseconds: bench/bench_invoke.py.

    .venv/bin/python bench/bench_declarations.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from serve_app.execution.executor import reported
from serve_app.tools import fs
from serve_app.tools.base import Tool


def shapes() -> list[tuple[str, Tool, dict[str, Any], dict[str, Any]]]:
    """(label, tool, raw arguments, the output as the first version's handler built it)."""
    stat_output = {
        "path": "src/main.py",
        "exists": True,
        "type": "file",
        "size_bytes": 1234,
        "mode": "0644",
        "modified_at": "2026-12-01T12:00:00Z",
    }
    matches = [
        {"path": f"src/module_{i}.py", "line": i, "snippet": f"def function_{i}(x): return x"}
        for i in range(200)
    ]
    search_output = {"matches": matches, "count": len(matches), "truncated": False}
    read_output = {
        "path": "README.md",
        "encoding": "utf8",
        "content": "lorem ipsum dolor sit amet\n" * 2427,
        "size_bytes": 65529,
        "truncated": False,
    }
    return [
        ("fs.stat", fs.stat, {"path": "src/main.py"}, stat_output),
        ("fs.search 200", fs.search, {"pattern": "def ", "max_results": 200}, search_output),
        ("fs.read_file 64K", fs.read_file, {"path": "README.md"}, read_output),
    ]


def as_dict(args: dict[str, Any], output: dict[str, Any]) -> Callable[[], object]:
    def call() -> object:
        seen = {key: args.get(key) for key in args}
        result = dict(output)
        return seen, result

    return call


def typed(tool: Tool, args: dict[str, Any], output: dict[str, Any]) -> Callable[[], object]:
    assert tool.arguments is not None
    model = tool.arguments
    output_model = type(reported_model(tool, output))

    def call() -> object:
        parsed = model.model_validate(args)
        return parsed, reported(output_model.model_validate(output))

    return call


def reported_model(tool: Tool, output: dict[str, Any]) -> Any:
    """The tool's Output model, found through its handler's return annotation."""
    import typing

    hints = typing.get_type_hints(tool.handler)
    (model,) = typing.get_args(hints["return"])
    return model.model_validate(output)


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    step()
    return (time.perf_counter_ns() - start) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    options = parser.parse_args()
    print(f"{'shape':<18} {'dict µs':>9} {'typed µs':>9} {'ratio':>6}")
    for label, tool, args, output in shapes():
        ways = (as_dict(args, output), typed(tool, args, output))
        samples: tuple[list[float], list[float]] = ([], [])
        for _ in range(options.requests):
            for way, found in zip(ways, samples, strict=True):
                found.append(timed(way))
        before, after = (statistics.median(found) for found in samples)
        print(f"{label:<18} {before:>9.1f} {after:>9.1f} {after / before:>6.1f}")


if __name__ == "__main__":
    main()
