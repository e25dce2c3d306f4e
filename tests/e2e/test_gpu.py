"""A GPU-pinned ToolExecutor through Ray Serve: the cluster's executor sizing (num_gpus: 1) on the
test cluster's declared GPU. Ray pins the replica to device "0" through CUDA_VISIBLE_DEVICES, and
gpu.info, invoked over HTTP, reports that pinning as the tools of that replica see it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx
import pytest
import ray
from ray import serve

from serve_app.app import Ingress, SessionManager, ToolExecutor
from serve_app.config import Settings
from serve_app.runtime.gpu_devices import device_nodes
from tests.e2e.conftest import ServeApp

pytestmark = pytest.mark.serve


def gpu_released(deadline_s: float) -> bool:
    """Whether the declared GPU is free again within the deadline (actors release it async)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if ray.available_resources().get("GPU", 0) >= 1:
            return True
        time.sleep(0.1)
    return False


def test_gpu_executor_holds_the_gpu_and_gpu_info_reports_it(serve_app: ServeApp) -> None:
    # A GPU deployment that cannot be placed never fails, it waits forever: check first.
    assert ray.available_resources().get("GPU", 0) >= 1, ray.available_resources()
    settings = Settings(
        workspace_root=serve_app.data / "gpu-workspaces",
        artifact_root=serve_app.data / "gpu-artifacts",
    )
    executor = ToolExecutor.options(ray_actor_options={"num_cpus": 0.1, "num_gpus": 1})
    manager = SessionManager.options(ray_actor_options={"num_cpus": 0.1})
    ingress = Ingress.options(ray_actor_options={"num_cpus": 0.1})
    app = ingress.bind(manager.bind(executor.bind(settings), settings), settings)
    serve.run(app, name="gpu", route_prefix="/gpu")
    try:
        handle = serve.get_deployment_handle("ToolExecutor", "gpu")
        assert handle.visible_devices.remote().result() == "0"
        assert ray.available_resources().get("GPU", 0) == 0  # the replica holds it

        with httpx.Client(base_url=f"{serve_app.url}/gpu", timeout=60) as http:
            created = http.post(
                "/v1/sessions",
                json={"principal": {"tenant_id": "gpu-tenant", "actor_id": "agent-1"}},
            )
            assert created.status_code == 201, created.text
            session_id = created.json()["session"]["id"]
            tools = http.get(f"/v1/sessions/{session_id}/tools").json()["tools"]
            assert "gpu.info" in {tool["name"] for tool in tools}
            response = http.post(
                f"/v1/sessions/{session_id}/tools/gpu.info/invoke", json={"args": {}}
            )
            assert response.status_code == 200, response.text
            invocation = response.json()["invocation"]
            assert invocation["status"] == "succeeded"
            output = invocation["output"]
            assert output["cuda_visible_devices"] == "0"
            # The sandbox shows the nodes of GPU 0 where this machine has them (none here).
            expected = device_nodes("0", Path("/dev"), Path("/proc/driver/nvidia/gpus"))
            assert output["device_nodes"] == sorted(f"/dev/{node.name}" for node in expected)
            if shutil.which("nvidia-smi") is None:
                assert output["devices"] == []
                assert "nvidia-smi is not available" in output["reason"]
            else:  # a machine with a real GPU: device 0 is the pinned one
                assert [device["visible"] for device in output["devices"]][:1] == [True]
    finally:
        serve.delete("gpu")
    assert gpu_released(deadline_s=30), ray.available_resources()


def test_the_cpu_only_application_reports_no_pinned_gpu(http: httpx.Client) -> None:
    created = http.post(
        "/v1/sessions", json={"principal": {"tenant_id": "gpu-tenant", "actor_id": "agent-2"}}
    )
    session_id = created.json()["session"]["id"]
    response = http.post(f"/v1/sessions/{session_id}/tools/gpu.info/invoke", json={"args": {}})
    assert response.status_code == 200, response.text
    output = response.json()["invocation"]["output"]
    assert output["cuda_visible_devices"] == ""
    assert output["device_nodes"] == []
    assert all(not device["visible"] for device in output["devices"])
