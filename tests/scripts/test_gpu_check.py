"""scripts/gpu_check.py run for real: Ray, the application with a `num_gpus: 1` executor and
gpu.info over HTTP. Here Ray is told of a GPU (--declare-gpus) and nvidia-smi is a stand-in
executable, so the script's verdicts can be checked on a machine without a GPU."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.serve

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"
DEVICE = "0, NVIDIA GeForce RTX 3090, 24576 MiB, GPU-11111111-2222-3333-4444-555555555555"


def nvidia_smi(directory: Path, script: str) -> Path:
    directory.mkdir()
    path = directory / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return directory


def gpu_check(
    *args: str, path_prefix: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **env}
    if path_prefix is not None:
        environment["PATH"] = f"{path_prefix}{os.pathsep}{environment['PATH']}"
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--timeout", "120", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )


def test_no_gpu_in_ray_fails_before_deploying() -> None:
    result = gpu_check(CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "ray_gpus:0"
    assert "GPU_CHECK_FAILED: Ray found no GPU on this machine" in result.stderr


def test_a_pinned_executor_without_a_device_fails(tmp_path: Path) -> None:
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    stub = nvidia_smi(tmp_path / "bin", f'echo "{message}"; exit 9')
    result = gpu_check("--declare-gpus", "1", path_prefix=stub)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "executor_cuda_visible_devices:0" in result.stdout.splitlines()
    assert "GPU_CHECK_OK" not in result.stdout
    assert (
        f"GPU_CHECK_FAILED: gpu.info reports no GPU device for the executor: "
        f"nvidia-smi exited 9: {message}"
    ) in result.stderr


def test_a_pinned_executor_that_sees_its_device_passes(tmp_path: Path) -> None:
    stub = nvidia_smi(tmp_path / "bin", f"echo '{DEVICE}'")
    result = gpu_check("--declare-gpus", "1", path_prefix=stub)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["ray_gpus:1", "executor_cuda_visible_devices:0"]
    assert '"cuda_visible_devices": "0"' in result.stdout
    assert '"visible": true' in result.stdout
    assert lines[-1] == "GPU_CHECK_OK"
