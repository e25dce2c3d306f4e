"""What opening paths from a handle on the workspace costs, side by side in one run.

For a file 1 and 8 directories deep it times, round-robin, the same count each:

  by-name    the jail's resolve (realpath) then `open(real_path, O_NOFOLLOW)` by its absolute
             name, as file tools did before: fast, but a directory on the path swapped for a
             symlink after the check is followed;
  anchored   `LocalFiles.read_file` / `write_file` / `stat`: resolve, then open the workspace and
             each component from its parent (`O_DIRECTORY | O_NOFOLLOW`, the `*at` calls).

and prints the median of each in microseconds and the anchored/by-name ratio. The tool call
around it (HTTP, policy, records) costs milliseconds: bench/bench_invoke.py.

    .venv/bin/python bench/bench_paths.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from serve_app.runtime.local_files import LocalFiles

Step = Callable[[], object]


def by_name_read(files: LocalFiles, path: str) -> Step:
    def read() -> bytes:
        real = files.resolve(path).real
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return os.read(fd, 65536)
        finally:
            os.close(fd)

    return read


def by_name_stat(files: LocalFiles, path: str) -> Step:
    return lambda: os.lstat(files.resolve(path).real)


def by_name_write(files: LocalFiles, path: str) -> Step:
    def write() -> None:
        real = Path(files.resolve(path).real)
        temporary = real.with_name(f".{real.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, b"data")
        finally:
            os.close(fd)
        os.replace(temporary, real)

    return write


def anchored_read(files: LocalFiles, path: str) -> Step:
    return lambda: files.read_file(files.resolve(path), max_bytes=65536)


def anchored_stat(files: LocalFiles, path: str) -> Step:
    return lambda: files.stat(files.resolve(path))


def anchored_write(files: LocalFiles, path: str) -> Step:
    return lambda: files.write_file(files.resolve(path), b"data")


def timed(step: Step) -> float:
    start = time.perf_counter_ns()
    step()
    return (time.perf_counter_ns() - start) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        workspace = Path(directory) / "repo"
        files = LocalFiles(workspace, ["."])
        print(f"{'operation':<18} {'by-name µs':>11} {'anchored µs':>12} {'ratio':>6}")
        for depth in (1, 8):
            parts = [f"d{i}" for i in range(depth - 1)]
            path = "/".join([*parts, "file.txt"])
            (workspace / Path(*parts) if parts else workspace).mkdir(parents=True, exist_ok=True)
            (workspace / path).write_bytes(b"x" * 1024)
            for operation, old, new in (
                ("read_file", by_name_read, anchored_read),
                ("stat", by_name_stat, anchored_stat),
                ("write_file", by_name_write, anchored_write),
            ):
                ways = (old(files, path), new(files, path))
                samples: tuple[list[float], list[float]] = ([], [])
                for _ in range(options.requests):
                    for way, found in zip(ways, samples, strict=True):
                        found.append(timed(way))
                before, after = (statistics.median(found) for found in samples)
                label = f"{operation} d={depth}"
                print(f"{label:<18} {before:>11.1f} {after:>12.1f} {after / before:>6.2f}")


if __name__ == "__main__":
    main()
