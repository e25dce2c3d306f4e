"""Families as factories: a family receives a toolbox, its handlers share one client per executor
replica made on first use and closed with the replica, and the session manager reads the
catalog without making a client or loading what only handlers use."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field

from serve_app.config import Settings
from serve_app.domain.capability import Idempotency, RiskLevel, Scope, SideEffects
from serve_app.execution.executor import ExecutionService
from serve_app.tools import build_registry
from serve_app.tools.base import Tool, ToolContext, ToolResult
from serve_app.tools.declare import Arguments, Output, build
from serve_app.tools.family import Clients, Toolbox
from serve_app.wiring import build_catalog
from tests.support.execution import make_session, run

ROOT = Path(__file__).resolve().parents[2]


class Pool:
    """Stands in for a network client's connection pool: counts what uses it."""

    made = 0

    def __init__(self) -> None:
        Pool.made += 1
        self.calls = 0
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


class PingArgs(Arguments):
    times: Annotated[int, Field(ge=1, le=3)] = 1


class PingOutput(Output):
    calls: int


def family(toolbox: Toolbox) -> list[Tool]:
    async def ping(_ctx: ToolContext, args: PingArgs) -> ToolResult[PingOutput]:
        pool = toolbox.clients.get("pool", Pool)
        pool.calls += args.times
        return ToolResult(output=PingOutput(calls=pool.calls))

    return [
        build(
            ping,
            arguments=PingArgs,
            output=PingOutput,
            name="test.ping",
            description="Count calls on the replica's shared pool; test-only.",
            scope=Scope.WORKSPACE,
            risk=RiskLevel.LOW,
            approval=False,
            side_effects=SideEffects.NONE,
            idempotency=Idempotency.GUARANTEED,
            timeout=5,
            output_kb=4,
            examples=[{}],
        )
    ]


FAMILY = f"{__name__}:family"


def test_a_factory_family_shares_one_client_per_replica(
    settings: Settings, workspace: Path
) -> None:
    Pool.made = 0
    toolbox = Toolbox(settings=settings)
    registry = build_registry([FAMILY], toolbox=toolbox)
    assert Pool.made == 0, "no client is made before a handler needs it"
    service = ExecutionService(registry, clients=toolbox.clients)
    session = make_session(workspace)

    async def scenario() -> list[int]:
        seen = []
        for times in (1, 2, 3):
            result = await run(service, session, "test.ping", {"times": times})
            assert result.error is None, result.error
            seen.append(result.output["calls"])
        await service.aclose()
        return seen

    assert asyncio.run(scenario()) == [1, 3, 6]
    assert Pool.made == 1
    assert len(toolbox.clients) == 0, "closed with the replica"


def test_clients_are_closed_with_the_replica() -> None:
    clients = Clients()
    pool = clients.get("pool", Pool)
    assert clients.get("pool", Pool) is pool
    asyncio.run(clients.close())
    assert pool.closed


def test_the_catalog_makes_no_client(settings: Settings) -> None:
    Pool.made = 0
    catalog = build_catalog(settings.model_copy(update={"extra_tool_families": [FAMILY]}))
    assert catalog.get("test.ping") is not None
    assert Pool.made == 0
    with pytest.raises(RuntimeError, match="only where tools run"):
        Toolbox.for_catalog(settings).clients.get("pool", Pool)


def test_reading_the_catalog_loads_no_handler_only_library() -> None:
    script = (
        "import sys\n"
        "from serve_app.config import Settings\n"
        "from serve_app.tools import build_registry\n"
        "from serve_app.tools.family import Toolbox\n"
        "registry = build_registry(toolbox=Toolbox.for_catalog(Settings()))\n"
        "assert registry.capabilities()\n"
        "print(' '.join(sorted(m for m in ('re2', 'kubernetes') if m in sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert loaded == []
