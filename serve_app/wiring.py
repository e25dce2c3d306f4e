"""Assembling the domain from settings: which adapters back which port. No Ray here, so the same
assembly serves the Serve deployments, the in-process app and the tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from serve_app.adapters.artifacts import LocalArtifactStore
from serve_app.adapters.local_workspace import LocalWorkspaceManager
from serve_app.adapters.memory import MemoryInvocationStore, MemorySessionStore
from serve_app.config import Settings
from serve_app.domain.catalog import Catalog
from serve_app.domain.models import utcnow
from serve_app.domain.ports import Executor
from serve_app.domain.service import SessionService
from serve_app.execution.executor import ExecutionService
from serve_app.tools import build_registry

log = logging.getLogger(__name__)


def build_executor(settings: Settings) -> ExecutionService:
    return ExecutionService(
        build_registry(settings.extra_tool_families), blocking_threads=settings.executor_threads
    )


def build_catalog(settings: Settings) -> Catalog:
    return Catalog(build_registry(settings.extra_tool_families).capabilities())


def build_session_service(
    settings: Settings, executor: Executor, *, clock: Callable[[], datetime] = utcnow
) -> SessionService:
    settings.workspace_root.mkdir(parents=True, exist_ok=True)
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    return SessionService(
        sessions=MemorySessionStore(),
        invocations=MemoryInvocationStore(
            clock=clock,
            ttl_seconds=settings.invocation_store_ttl_seconds,
            max_records=settings.invocation_store_max_records,
        ),
        artifacts=LocalArtifactStore(settings.artifact_root),
        workspaces=LocalWorkspaceManager(
            settings.workspace_root,
            source_repo_roots=settings.source_repo_roots,
            clone_timeout_seconds=settings.clone_timeout_seconds,
        ),
        catalog=build_catalog(settings),
        executor=executor,
        default_ttl_seconds=settings.session_default_ttl_seconds,
        max_ttl_seconds=settings.session_max_ttl_seconds,
        clock=clock,
    )


async def run_sweeper(service: SessionService, interval_seconds: float) -> None:
    """Remove expired sessions nobody touches again, every `interval_seconds`, until cancelled."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            removed = await service.sweep_expired()
            if removed:
                log.info("sweeper removed %d expired sessions", removed)
        except Exception:
            log.exception("session sweep failed")
