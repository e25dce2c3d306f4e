"""On a machine with an NVIDIA GPU: start Ray, serve the application with a GPU-pinned executor
(`num_gpus: 1`, as ray_config/cluster.yaml sizes it) on a free loopback port, invoke gpu.info over
the HTTP API and print what it reports.

    .venv/bin/python scripts/gpu_check.py          # or: make gpu-check

Prints `ray_gpus:<n>`, `executor_cuda_visible_devices:<value>`, the gpu.info output as JSON, then
`GPU_CHECK_OK`; exits 1 with `GPU_CHECK_FAILED: <why>` when Ray finds no GPU (the application is
then not deployed: a GPU replica that cannot be placed waits forever) or when gpu.info reports no
device the executor may use. `--declare-gpus N` tells Ray the machine has N GPUs instead of
letting it detect them, to exercise the script where there is none (the device list still comes
from nvidia-smi, so the check then fails unless one is on PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class CheckFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def post(url: str, body: object, timeout: float) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise CheckFailed(f"POST {url}: HTTP {error.code} {error.read()[:300]!r}") from None


def deploy(app: Any, timeout: float) -> None:
    """serve.run, bounded: a replica Ray cannot place would otherwise block for ever."""
    from ray import serve

    failure: list[BaseException] = []

    def run() -> None:
        try:
            serve.run(app, name="gpu-check", route_prefix="/")
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise CheckFailed(f"the application was not running after {timeout:g} s: {serve.status()}")
    if failure:
        raise CheckFailed(f"the application failed to deploy: {failure[0]}")


def check(data: Path, declare_gpus: int | None, timeout: float) -> dict[str, Any]:
    import ray
    from ray import serve

    from serve_app.app import Ingress, SessionManager, ToolExecutor
    from serve_app.config import Settings

    ray.init(
        address="local",
        num_gpus=declare_gpus,
        include_dashboard=False,
        _temp_dir=str(data / "ray"),
        logging_level="WARNING",
        log_to_driver=False,
    )
    gpus = ray.cluster_resources().get("GPU", 0)
    print(f"ray_gpus:{gpus:g}", flush=True)
    if gpus < 1:
        raise CheckFailed("Ray found no GPU on this machine")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    settings = Settings(
        workspace_root=data / "workspaces",
        artifact_root=data / "artifacts",
        session_store_backend="memory",
        invocation_store_backend="memory",
        auth_mode="payload",
    )
    executor = ToolExecutor.options(ray_actor_options={"num_cpus": 0.25, "num_gpus": 1})
    manager = SessionManager.options(ray_actor_options={"num_cpus": 0.25})
    ingress = Ingress.options(ray_actor_options={"num_cpus": 0.25})
    deploy(ingress.bind(manager.bind(executor.bind(settings), settings), settings), timeout)
    pinned = serve.get_deployment_handle("ToolExecutor", "gpu-check").visible_devices.remote()
    print(f"executor_cuda_visible_devices:{pinned.result()}", flush=True)

    base = f"http://127.0.0.1:{port}"
    principal = {"tenant_id": "gpu-check", "actor_id": "operator", "roles": ["developer"]}
    session = post(f"{base}/v1/sessions", {"principal": principal}, timeout)["session"]
    invocation = post(
        f"{base}/v1/sessions/{session['id']}/tools/gpu.info/invoke", {"args": {}}, timeout
    )["invocation"]
    if invocation.get("status") != "succeeded":
        raise CheckFailed(f"gpu.info {invocation.get('status')}: {invocation.get('error')}")
    output: dict[str, Any] = invocation["output"]
    return output


def check_device_nodes(output: dict[str, Any]) -> None:
    """Where this machine has GPU device nodes, the executor's sandbox must show its GPU's (a
    stand-in nvidia-smi on a machine without a GPU has none to show)."""
    host = sorted(
        str(p) for p in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia\d+", p.name)
    )
    shown = [
        node for node in output.get("device_nodes", []) if re.fullmatch(r"/dev/nvidia\d+", node)
    ]
    print(f"host_device_nodes:{','.join(host)}", flush=True)
    print(f"sandbox_device_nodes:{','.join(shown)}", flush=True)
    if host and not shown:
        raise CheckFailed(f"the tool sandbox shows none of this machine's GPU device nodes {host}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--declare-gpus", type=int, default=None, metavar="N")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to deploy and call")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    data = Path(tempfile.mkdtemp(prefix="ws-gpu-check-"))
    try:
        output = check(data, args.declare_gpus, args.timeout)
        print(json.dumps(output, indent=2), flush=True)
        if not [device for device in output["devices"] if device.get("visible")]:
            raise CheckFailed(
                "gpu.info reports no GPU device for the executor"
                + (f": {output['reason']}" if output.get("reason") else "")
            )
        check_device_nodes(output)
    except CheckFailed as failure:
        print(f"GPU_CHECK_FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    finally:
        import ray

        ray.shutdown()
        shutil.rmtree(data, ignore_errors=True)
    print("GPU_CHECK_OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
