"""Fixtures shared by the tool tests: a workspace directory and an executor over every tool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.execution.executor import ExecutionService
from serve_app.runtime.sandbox import Sandbox
from serve_app.tools import build_registry
from tests.conftest import TEST_GIT_SCHEMES
from tests.support.execution import make_workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path)


@pytest.fixture
def executor() -> Iterator[ExecutionService]:
    service = ExecutionService(
        build_registry(), sandbox=Sandbox(git_protocols=tuple(TEST_GIT_SCHEMES))
    )
    yield service
    service.close()
