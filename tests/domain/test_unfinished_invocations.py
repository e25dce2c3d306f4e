"""No invocation is left `running` by a replica that goes on living.

`SessionService.drain`, which a SessionManager replica runs when Serve stops it: invocations that
end within the timeout end as they would; those still running then are cancelled and end `failed`
(unavailable, retryable). And an executor call cancelled from outside (Serve cancels it when the
caller goes away) ends its invocation `failed` at once. With the in-memory stores and with Valkey
(where the invocation's lease entry must go too)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from serve_app.config import Settings
from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.invoking import DRAINED_MESSAGE, InvokeCommand, correlation_scope
from serve_app.domain.models import InvocationStatus, Principal, utcnow
from serve_app.domain.service import SessionService
from serve_app.domain.sessions import CreateSession
from serve_app.wiring import Stores, build_executor, build_session_service, build_stores

PRINCIPAL = Principal(tenant_id="t", actor_id="a")


@pytest.fixture(params=["memory", "valkey"])
def backend(request: pytest.FixtureRequest) -> Settings:
    name = "settings" if request.param == "memory" else "valkey_settings"
    settings: Settings = request.getfixturevalue(name)
    return settings.model_copy(update={"invocation_lease_seconds": 3})


async def started(
    service: SessionService, stores: Stores, seconds: float, correlation_id: str
) -> tuple[asyncio.Task[object], str, str]:
    """An invocation of `test.sleep` under way; returns the caller's task, the invocation id and
    the session id."""
    session = await service.create_session(CreateSession(principal=PRINCIPAL))
    command = InvokeCommand(args={"seconds": seconds}, correlation_id=correlation_id)
    call: asyncio.Task[object] = asyncio.create_task(
        service.invoke(session.id, "test.sleep", command)
    )
    scope = correlation_scope(session)
    deadline = time.monotonic() + 10
    while (
        found := await stores.invocations.find_by_correlation(scope, "test.sleep", correlation_id)
    ) is None:
        assert time.monotonic() < deadline, "the invocation was never recorded"
        await asyncio.sleep(0.05)
    assert found.status is InvocationStatus.RUNNING
    return call, found.id, session.id


async def test_drain_ends_what_is_still_running_failed_and_retryable(backend: Settings) -> None:
    stores = build_stores(backend)
    service = build_session_service(backend, build_executor(backend), stores=stores)
    try:
        call, invocation_id, _ = await started(service, stores, 30, "long-1")
        # As under Serve: the caller went away, its invocation goes on.
        call.cancel()
        await asyncio.sleep(0.3)
        assert (await service.get_invocation(invocation_id)).status is InvocationStatus.RUNNING

        began = time.monotonic()
        assert await asyncio.wait_for(service.drain(timeout=0.5), 10) == 1
        assert time.monotonic() - began < 5

        ended = await service.get_invocation(invocation_id)
        assert ended.status is InvocationStatus.FAILED
        assert ended.error is not None
        assert ended.error.code == "unavailable"
        assert ended.error.retryable is True
        assert ended.error.message == DRAINED_MESSAGE
        assert ended.completed_at is not None
        # Nothing left for a sweeper: no lease entry, even long after it would have run out.
        later = utcnow() + timedelta(hours=1)
        assert await stores.invocations.abandoned(later, 100) == []
        assert await service.sweep_abandoned() == 0
        # The observers heard of it.
        snapshot = await service.metrics()
        assert snapshot.invocations.get(("test.sleep", "failed")) == 1
    finally:
        await stores.close()


async def test_drain_lets_invocations_that_end_in_time_end_as_they_would(
    backend: Settings,
) -> None:
    stores = build_stores(backend)
    service = build_session_service(backend, build_executor(backend), stores=stores)
    try:
        call, invocation_id, _ = await started(service, stores, 1, "short-1")
        assert await asyncio.wait_for(service.drain(timeout=10), 15) == 0
        outcome = await asyncio.wait_for(call, 5)
        assert outcome.invocation.status is InvocationStatus.SUCCEEDED  # type: ignore[attr-defined]
        stored = await service.get_invocation(invocation_id)
        assert stored.status is InvocationStatus.SUCCEEDED
        assert await stores.invocations.abandoned(utcnow() + timedelta(hours=1), 100) == []
    finally:
        await stores.close()


async def test_drain_with_nothing_in_flight_returns_at_once(settings: Settings) -> None:
    service = build_session_service(settings, build_executor(settings))
    began = time.monotonic()
    assert await service.drain(timeout=30) == 0
    assert time.monotonic() - began < 1


class CancelledExecutor:
    """An executor whose call is cancelled from outside the invocation's own task, as Serve
    cancels the ToolExecutor request when the caller's request is cancelled."""

    def __init__(self) -> None:
        self.calls: list[asyncio.Future[ExecutionResult]] = []

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        call: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
        self.calls.append(call)
        return await call


async def test_an_executor_call_cancelled_from_outside_ends_the_invocation_failed(
    backend: Settings,
) -> None:
    stores = build_stores(backend)
    executor = CancelledExecutor()
    service = build_session_service(backend, executor, stores=stores)
    try:
        session = await service.create_session(CreateSession(principal=PRINCIPAL))
        command = InvokeCommand(args={"seconds": 30})
        call = asyncio.create_task(service.invoke(session.id, "test.sleep", command))
        deadline = time.monotonic() + 10
        while not executor.calls:
            assert time.monotonic() < deadline, "the executor was never called"
            await asyncio.sleep(0.01)
        executor.calls[0].cancel()

        outcome = await asyncio.wait_for(call, 10)
        assert outcome.invocation.status is InvocationStatus.FAILED
        assert outcome.invocation.error is not None
        assert outcome.invocation.error.code == "unavailable"
        assert outcome.invocation.error.retryable is True
        assert outcome.invocation.error.message == "test.sleep was cancelled before it ended; retry"
        stored = await service.get_invocation(outcome.invocation.id)
        assert stored.status is InvocationStatus.FAILED
        assert await stores.invocations.abandoned(utcnow() + timedelta(hours=1), 100) == []
    finally:
        await stores.close()


async def test_sweeps_go_on_past_what_they_cannot_end(settings: Settings) -> None:
    """A store that keeps failing for some records neither stops a sweep at the first failure
    nor makes it loop on the same batch forever."""
    now = [utcnow()]
    stores = build_stores(settings, clock=lambda: now[0])
    service = build_session_service(
        settings, build_executor(settings), stores=stores, clock=lambda: now[0]
    )
    sessions = [
        await service.create_session(CreateSession(principal=PRINCIPAL, expires_in_seconds=60))
        for _ in range(3)
    ]

    async def refuse(_session_id: str) -> None:
        raise OSError("store down")

    stores.sessions.delete = refuse  # type: ignore[method-assign]
    now[0] += timedelta(minutes=5)
    assert await asyncio.wait_for(service.sweep_expired(batch=3), 5) == 0
    assert await asyncio.wait_for(service.sweep_expired(batch=2), 5) == 0
    assert len(sessions) == 3
