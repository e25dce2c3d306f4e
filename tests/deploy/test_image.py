"""The image the RayService runs: Ray 2.60.0 on Python 3.11 with serve_app installed at build time,
in a CPU and a GPU variant whose tags are the ones deploy/60-rayservice.yaml names."""

from __future__ import annotations

import os
import re
import subprocess

from tests.deploy.manifests import REPO, groups, ray_container, rayservice


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]


def test_the_image_is_rays_2_60_python_3_11_image_with_the_package_installed() -> None:
    lines = instructions()
    assert "ARG RAY_IMAGE=rayproject/ray:2.60.0-py311" in lines
    assert (
        lines[lines.index("ARG RAY_IMAGE=rayproject/ray:2.60.0-py311") + 1] == "FROM ${RAY_IMAGE}"
    )
    assert any(line.startswith("COPY") and "serve_app" in line for line in lines)
    assert any(line.startswith("COPY") and "pyproject.toml" in line for line in lines)
    (install,) = [line for line in lines if "pip install" in line]
    assert "pip install --no-cache-dir ." in install
    assert [line for line in lines if line.startswith("USER")][-1] == "USER ray"


def test_the_build_context_is_the_package_only() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    assert {p for p in patterns if p.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!serve_app/",
    }


def test_make_builds_the_two_images_the_rayservice_names() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry_run = subprocess.run(
        ["make", "-n", "--no-print-directory", "workspace-image"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    tags = re.findall(r"-t (\S+)", dry_run)
    images = {name: ray_container(group)["image"] for name, group in groups(rayservice()).items()}
    assert tags == [images["head"], images["gpu"]]
    assert "--build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu" in dry_run
