"""Invoke latency and throughput through the full Serve stack, side by side with its floor.

Targets, each started fresh on loopback in this one run:
  inprocess          the same FastAPI app, session manager and executor in one process (uvicorn)
  serve              the application on Ray Serve (default mode)
  echo               a bare three-deployment echo chain on Ray Serve (default mode)
  serve-throughput   the application with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (direct ingress)
  *-valkey           the same target with both stores in a real valkey-server started here
                     (append-only, fsync every second) instead of in memory
  *-traced           the same target with OpenTelemetry tracing on (sampling 1.0), exporting
                     over OTLP/HTTP to a sink started here
  echo-throughput    the echo chain in the same mode

For each: `fs.read_file` p50/p99 at concurrency 1, requests/s at concurrency 32, and (application
targets) `fs.read_file` p50/p99 while 32 slow invocations (`test.sleep`) are in flight.

    .venv/bin/python bench/bench_invoke.py [--requests 300] [--seconds 8] [--targets a,b,...]
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.valkey import ValkeyServer

REPO = Path(__file__).resolve().parents[1]
PRINCIPAL = {"tenant_id": "bench", "actor_id": "bench", "roles": ["developer"]}
ALL_TARGETS = [
    "inprocess",
    "inprocess-valkey",
    "serve",
    "serve-valkey",
    "echo",
    "serve-throughput",
    "echo-throughput",
    "inprocess-traced",
    "serve-traced",
]


@dataclass
class Result:
    target: str
    p50_ms: float
    p99_ms: float
    rps_c32: float
    slow_p50_ms: float | None = None
    slow_p99_ms: float | None = None


class OtlpSink:
    """Accepts OTLP/HTTP exports and drops them (a collector's cost is not ours)."""

    def __init__(self) -> None:
        class Sink(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def start(target: str, data: Path, valkey: str, otlp: str) -> tuple[subprocess.Popen[str], str]:
    kind = target.split("-")[0]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    if target.endswith("-throughput"):
        env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    if target.endswith("-valkey"):
        env["WORKSPACE_BENCH_VALKEY_ADDR"] = valkey
    if target.endswith("-traced"):
        env["WORKSPACE_BENCH_OTLP_ENDPOINT"] = otlp
    port = free_port()  # Serve's throughput mode serves directly on port + 1
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / "serve_target.py"),
            kind,
            str(port),
            str(data / target),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("READY "):
            return process, line.split()[1]
        if not line and process.poll() is not None:
            break
    stop(process)
    raise RuntimeError(f"{target} did not start")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def prepare(http: aiohttp.ClientSession, base: str, echo: bool) -> str:
    if echo:
        return f"{base}/v1/sessions/s/tools/fs.read_file/invoke"
    async with http.post(f"{base}/v1/sessions", json={"principal": PRINCIPAL}) as response:
        session_id = (await response.json())["session"]["id"]
    body = {"approved": True, "args": {"path": "bench/data.txt", "content": "x" * 1024}}
    async with http.post(
        f"{base}/v1/sessions/{session_id}/tools/fs.write_file/invoke", json=body
    ) as r:
        assert r.status == 200, await r.text()
    return f"{base}/v1/sessions/{session_id}/tools/fs.read_file/invoke"


READ_BODY = {"args": {"path": "bench/data.txt"}}


async def one(http: aiohttp.ClientSession, url: str) -> float:
    began = time.perf_counter()
    async with http.post(url, json=READ_BODY) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
    return time.perf_counter() - began


async def latencies(http: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    for _ in range(min(30, count)):
        await one(http, url)
    return [await one(http, url) for _ in range(count)]


async def throughput(
    http: aiohttp.ClientSession, url: str, concurrency: int, seconds: float
) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one(http, url)
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - began)


async def under_slow_load(http: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    sleep_url = url.replace("/fs.read_file/", "/test.sleep/")
    hold = max(8.0, count * 0.05)

    async def slow() -> None:
        async with http.post(sleep_url, json={"args": {"seconds": hold}}) as response:
            await response.read()

    sleepers = [asyncio.create_task(slow()) for _ in range(32)]
    await asyncio.sleep(1.0)
    samples = [await one(http, url) for _ in range(count)]
    still_running = sum(not task.done() for task in sleepers)
    await asyncio.gather(*sleepers)
    if still_running < 32:
        print(
            f"  warning: only {still_running} slow invocations were still in flight",
            file=sys.stderr,
        )
    return samples


async def measure(target: str, base: str, requests: int, seconds: float) -> Result:
    connector = aiohttp.TCPConnector(limit=128)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        echo = target.startswith("echo")
        url = await prepare(http, base, echo)
        samples = await latencies(http, url, requests)
        rps = await throughput(http, url, 32, seconds)
        result = Result(target, percentile(samples, 0.5), percentile(samples, 0.99), rps)
        if not echo:
            slow = await under_slow_load(http, url, min(requests, 200))
            result.slow_p50_ms = percentile(slow, 0.5)
            result.slow_p99_ms = percentile(slow, 0.99)
        return result


def report(results: dict[str, Result]) -> None:
    print(
        "\n| target | p50 ms (c=1) | p99 ms (c=1) | req/s (c=32) "
        "| p50 ms with 32 slow | p99 ms with 32 slow |"
    )
    print("|---|---|---|---|---|---|")
    for r in results.values():
        slow50 = f"{r.slow_p50_ms:.2f}" if r.slow_p50_ms is not None else "—"
        slow99 = f"{r.slow_p99_ms:.2f}" if r.slow_p99_ms is not None else "—"
        print(
            f"| {r.target} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.rps_c32:.0f} "
            f"| {slow50} | {slow99} |"
        )
    print()
    for app, floor in (("serve", "echo"), ("serve-throughput", "echo-throughput")):
        if app in results and floor in results:
            a, f = results[app], results[floor]
            print(
                f"{app} / {floor}: p50 ratio {a.p50_ms / f.p50_ms:.2f}x (goal <= 1.5x), "
                f"throughput ratio {a.rps_c32 / f.rps_c32:.2f}x"
            )
    for app in ("inprocess", "serve"):
        durable = f"{app}-valkey"
        if app in results and durable in results:
            a, b = results[durable], results[app]
            print(
                f"{durable} vs {app}: p50 +{a.p50_ms - b.p50_ms:.2f} ms (goal <= +1 ms), "
                f"throughput ratio {a.rps_c32 / b.rps_c32:.2f}x"
            )
    for app in ("inprocess", "serve"):
        traced = f"{app}-traced"
        if app in results and traced in results:
            a, b = results[traced], results[app]
            print(
                f"{traced} vs {app}: p50 +{a.p50_ms - b.p50_ms:.2f} ms "
                f"({a.p50_ms / b.p50_ms:.2f}x), throughput ratio {a.rps_c32 / b.rps_c32:.2f}x"
            )
    if "serve" in results and "inprocess" in results:
        a, b = results["serve"], results["inprocess"]
        print(
            f"serve / inprocess: p50 ratio {a.p50_ms / b.p50_ms:.2f}x, "
            f"throughput ratio {a.rps_c32 / b.rps_c32:.2f}x"
        )
    if "serve-throughput" in results and "serve" in results:
        a, b = results["serve-throughput"], results["serve"]
        print(
            f"serve-throughput / serve: p50 ratio {a.p50_ms / b.p50_ms:.2f}x, "
            f"throughput ratio {a.rps_c32 / b.rps_c32:.2f}x"
        )
    for r in results.values():
        if r.slow_p99_ms is not None:
            verdict = "meets" if r.slow_p99_ms <= 50 else "misses"
            print(
                f"{r.target}: fs.read_file p99 with 32 slow in flight {r.slow_p99_ms:.1f} ms "
                f"({verdict} the 50 ms goal)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--targets", default=",".join(ALL_TARGETS))
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    results: dict[str, Result] = {}
    targets = args.targets.split(",")
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as data:
        valkey = ValkeyServer(Path(data) / "valkey", fsync="everysec")
        sink = OtlpSink()
        if any(target.endswith("-valkey") for target in targets):
            valkey.start()
        try:
            for target in targets:
                print(f"starting {target} ...", file=sys.stderr, flush=True)
                process, base = start(target, Path(data), valkey.address, sink.endpoint)
                try:
                    results[target] = asyncio.run(
                        measure(target, base, args.requests, args.seconds)
                    )
                    print(f"  {asdict(results[target])}", file=sys.stderr, flush=True)
                finally:
                    stop(process)
        finally:
            valkey.stop()
            sink.stop()
    report(results)
    if args.json:
        args.json.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
