"""gpu.info through the ExecutionService: the replica's CUDA_VISIBLE_DEVICES and the devices of a
real `nvidia-smi` process (a stand-in executable on PATH where a test needs devices)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from serve_app.domain.capability import Idempotency, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import ErrorCode
from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.models import Principal, Runtime, Session, utcnow
from serve_app.execution.executor import ExecutionService
from serve_app.runtime.sandbox import Sandbox
from serve_app.tools import build_registry, builtin_tools
from serve_app.tools.gpu import info, parse_device_nodes, parse_devices

TWO_DEVICES = (
    "0, NVIDIA GeForce RTX 3090, 24576 MiB, GPU-11111111-2222-3333-4444-555555555555\n"
    "1, NVIDIA GeForce RTX 3090, 24576 MiB, GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n"
)


@pytest.fixture
def session(tmp_path: Path) -> Session:
    workspace = tmp_path / "tenant" / "sess-gpu" / "repo"
    workspace.mkdir(parents=True)
    (workspace.parent / "home").mkdir()
    now = utcnow()
    return Session(
        id="sess-gpu",
        workspace_path=str(workspace),
        runtime=Runtime(kind="local"),
        allowed_paths=["."],
        principal=Principal(tenant_id="tenant", actor_id="agent", roles=["developer"]),
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


@pytest.fixture
def executor() -> Iterator[ExecutionService]:
    service = ExecutionService(build_registry())
    yield service
    service.close()


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    return directory


def fake_nvidia_smi(bin_dir: Path, script: str) -> Path:
    """An executable named nvidia-smi; it records its arguments in `args.txt` in the session's
    HOME (its own directory is read-only inside the sandbox)."""
    path = bin_dir / "nvidia-smi"
    path.write_text(f'#!/bin/sh\nprintf \'%s\\n\' "$@" > "$HOME/args.txt"\n{script}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def gpu_info(
    executor: ExecutionService, session: Session, timeout: float = 15
) -> ExecutionResult:
    request = ExecutionRequest(
        invocation_id=f"inv-{time.monotonic_ns()}",
        tool_name="gpu.info",
        args={},
        session=session,
        timeout_seconds=timeout,
    )
    return await executor.execute(request)


def test_catalog_entry_is_a_low_risk_workspace_tool() -> None:
    assert "gpu.info" in {tool.name for tool in builtin_tools()}
    capability = info.capability
    assert capability.scope is Scope.WORKSPACE
    assert capability.risk_level is RiskLevel.LOW
    assert capability.requires_approval is False
    assert capability.side_effects is SideEffects.NONE
    assert capability.idempotency is Idempotency.GUARANTEED
    assert capability.constraints.timeout_seconds == 15
    assert capability.input_schema["required"] == []
    assert set(capability.output_schema["properties"]) == {
        "cuda_visible_devices",
        "devices",
        "device_nodes",
        "reason",
    }


async def test_without_nvidia_smi_reports_no_devices_and_why(
    executor: ExecutionService,
    session: Session,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))  # an empty directory: no nvidia-smi anywhere
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    result = await gpu_info(executor, session)
    assert result.error is None, result.error
    assert result.output["cuda_visible_devices"] == "0"
    assert result.output["devices"] == []
    assert "nvidia-smi is not available" in result.output["reason"]


async def test_reports_an_unset_variable_as_null(
    executor: ExecutionService,
    session: Session,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = await gpu_info(executor, session)
    assert result.output["cuda_visible_devices"] is None


async def test_lists_devices_and_which_the_replica_may_use(
    executor: ExecutionService,
    session: Session,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_nvidia_smi(bin_dir, f"printf '%s' '{TWO_DEVICES}'")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    result = await gpu_info(executor, session)
    assert result.error is None, result.error
    home = Path(session.workspace_path).parent / "home"
    assert (home / "args.txt").read_text().split() == [
        "--query-gpu=index,name,memory.total,uuid",
        "--format=csv,noheader",
    ]
    output = dict(result.output)
    nodes = output.pop("device_nodes")
    assert isinstance(nodes, list) and all(node.startswith("/dev/nvidia") for node in nodes)
    assert output == {
        "cuda_visible_devices": "1",
        "devices": [
            {
                "index": 0,
                "name": "NVIDIA GeForce RTX 3090",
                "memory_total": "24576 MiB",
                "uuid": "GPU-11111111-2222-3333-4444-555555555555",
                "visible": False,
            },
            {
                "index": 1,
                "name": "NVIDIA GeForce RTX 3090",
                "memory_total": "24576 MiB",
                "uuid": "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                "visible": True,
            },
        ],
    }


@pytest.mark.parametrize(
    ("pinned", "visible"),
    [
        (None, [True, True]),  # unset: CUDA sees every device
        ("", [False, False]),  # a CPU-only replica
        ("GPU-aaaaaaaa", [False, True]),  # pinned by uuid prefix
        ("0,1", [True, True]),
    ],
)
async def test_visibility_follows_the_pinning(
    executor: ExecutionService,
    session: Session,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    pinned: str | None,
    visible: list[bool],
) -> None:
    fake_nvidia_smi(bin_dir, f"printf '%s' '{TWO_DEVICES}'")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    if pinned is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", pinned)
    result = await gpu_info(executor, session)
    assert [device["visible"] for device in result.output["devices"]] == visible


async def test_a_failing_nvidia_smi_gives_its_exit_code_and_message(
    executor: ExecutionService,
    session: Session,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    fake_nvidia_smi(bin_dir, f'echo "{message}"\nexit 9')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = await gpu_info(executor, session)
    assert result.error is None, result.error
    assert result.output["devices"] == []
    assert result.output["reason"] == f"nvidia-smi exited 9: {message}"


async def test_a_hanging_nvidia_smi_times_out_with_exit_124(
    executor: ExecutionService,
    session: Session,
    bin_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_nvidia_smi(bin_dir, "exec sleep 30")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    result = await gpu_info(executor, session, timeout=1)
    assert time.monotonic() - started < 10
    assert result.error is not None
    assert result.error.code == ErrorCode.TIMEOUT
    assert result.exit_code == 124


def test_parse_keeps_commas_in_names_and_skips_other_lines() -> None:
    text = "No devices were found\n3, Tesla T4, rev A, 15360 MiB, GPU-1234\n\ngarbage\n"
    assert parse_devices(text) == [
        {"index": 3, "name": "Tesla T4, rev A", "memory_total": "15360 MiB", "uuid": "GPU-1234"}
    ]


def test_parse_device_nodes_keeps_only_nvidia_entries() -> None:
    listing = "console\nnull\nnvidia-uvm\nnvidia0\nnvidiactl\nshm\nnvidia-caps\nzero\n"
    assert parse_device_nodes(listing) == [
        "/dev/nvidia-caps",
        "/dev/nvidia-uvm",
        "/dev/nvidia0",
        "/dev/nvidiactl",
    ]
    assert parse_device_nodes("") == []


@pytest.mark.parametrize(
    ("pinned", "nodes"),
    [
        ("1", ["/dev/nvidia-uvm", "/dev/nvidia1", "/dev/nvidiactl"]),
        ("", []),
    ],
)
async def test_device_nodes_are_the_ones_the_sandbox_shows(
    session: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pinned: str,
    nodes: list[str],
) -> None:
    """A replica pinned to GPU 1 sees that GPU's node and the control nodes, nothing else; one
    without GPUs sees none (stand-in device nodes; without the driver's procfs index N is
    minor N)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"):
        (dev / name).write_text("")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", pinned)
    sandbox = Sandbox(dev_root=dev, gpu_proc_root=tmp_path / "no-driver")
    service = ExecutionService(build_registry(), sandbox=sandbox)
    try:
        result = await gpu_info(service, session)
    finally:
        service.close()
    assert result.output["cuda_visible_devices"] == pinned
    assert result.output["device_nodes"] == nodes
