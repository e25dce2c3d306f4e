"""Start one benchmark target on loopback, print `READY <base url>`, serve until SIGTERM/SIGINT.

    python bench/serve_target.py workspace|echo|inprocess PORT DATA_DIR

With WORKSPACE_BENCH_VALKEY_ADDR set, the application keeps its state in that Valkey; with
WORKSPACE_BENCH_OTLP_ENDPOINT set, it traces every request (sampling 1.0) to that collector.
`workspace` and `echo` run on a fresh local Ray cluster (set RAY_SERVE_THROUGHPUT_OPTIMIZED=1 in
the environment for Serve's throughput-optimized mode, whose ingress then serves HTTP directly on
PORT + 1); `inprocess` serves the same FastAPI app with in-process services through uvicorn.
"""

import os
import signal
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def settings(data: Path) -> "Settings":  # noqa: F821
    from serve_app.config import Settings

    valkey = os.environ.get("WORKSPACE_BENCH_VALKEY_ADDR", "")
    backend = "valkey" if valkey else "memory"
    otlp = os.environ.get("WORKSPACE_BENCH_OTLP_ENDPOINT", "")
    return Settings(
        otel_enabled=bool(otlp),
        otel_endpoint=otlp,
        otel_insecure=True,
        otel_sampling_ratio=1.0,
        workspace_root=data / "workspaces",
        artifact_root=data / "artifacts",
        extra_tool_families=["tests.support.tools:TOOLS"],
        session_store_backend=backend,
        invocation_store_backend=backend,
        valkey_addr=valkey,
        session_store_key_prefix=f"bench-{data.name}:session",
        invocation_store_key_prefix=f"bench-{data.name}:invocation",
    )


def serve_on_ray(kind: str, port: int, data: Path) -> None:
    os.environ["PYTHONPATH"] = str(REPO)
    os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(port + 1)
    os.environ["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(port + 5)
    import ray
    from ray import serve

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(data / "ray"),
        log_to_driver=False,
        logging_level="ERROR",
    )
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    if kind == "echo":
        from bench.echo_app import build_echo

        serve.run(build_echo(), name="echo", route_prefix="/")
    else:
        from serve_app.app import build_app

        serve.run(build_app(settings(data)), name="workspace", route_prefix="/")
    direct = os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == "1"
    print(f"READY http://127.0.0.1:{port + 1 if direct else port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    ray.shutdown()


def serve_in_process(port: int, data: Path) -> None:
    import uvicorn

    from serve_app import tracing
    from serve_app.api.app import create_app
    from serve_app.wiring import build_executor, build_session_service

    config = settings(data)
    tracing.configure(config)
    app = create_app(build_session_service(config, build_executor(config)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Timer(1.0, lambda: print(f"READY http://127.0.0.1:{port}", flush=True)).start()
    server.run()


def main() -> None:
    kind, port, data = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    if kind == "inprocess":
        serve_in_process(port, data)
    else:
        serve_on_ray(kind, port, data)


if __name__ == "__main__":
    main()
