"""No invocation stays `running` for ever: a replica renews the lease of what it runs, and when a
replica dies the sweeper (on any replica) ends its invocations `failed` (unavailable,
retryable). With Valkey, as replicas share it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from serve_app.config import Settings
from serve_app.domain.invoking import InvokeCommand
from serve_app.domain.models import Invocation, InvocationStatus, Principal, utcnow
from serve_app.domain.sessions import CreateSession
from serve_app.wiring import build_executor, build_session_service, build_stores, sweep_once
from tests.support.replicas import replica


def leased(settings: Settings) -> Settings:
    return settings.model_copy(update={"invocation_lease_seconds": 1})


def test_a_dead_replicas_invocation_ends_failed_and_retryable(valkey_settings: Settings) -> None:
    settings = leased(valkey_settings)
    with replica(settings) as survivor:
        session = survivor.post(
            "/v1/sessions", json={"principal": {"tenant_id": "t", "actor_id": "a"}}
        ).json()["session"]
        # What a replica had done when it died: the `running` record and its lease.
        stores = build_stores(settings)
        dead = Invocation(
            id="inv-0000000000dead01",
            session_id=session["id"],
            tool_name="fs.read_file",
            status=InvocationStatus.RUNNING,
            started_at=utcnow(),
            owner=Principal(tenant_id="t", actor_id="a"),
        )

        async def die() -> None:
            await stores.invocations.create(dead)
            await stores.invocations.hold(dead.id, utcnow() + timedelta(seconds=1))
            await stores.close()

        survivor.portal.call(die)  # type: ignore[attr-defined]
        before = survivor.get(f"/v1/invocations/{dead.id}").json()["invocation"]
        assert before["status"] == "running"
        # The lease runs out; the sweeper ends it.
        service = survivor.app.state.service  # type: ignore[attr-defined]
        lease = survivor.app.state.stores.sweeper_lease  # type: ignore[attr-defined]
        deadline = utcnow() + timedelta(seconds=10)
        while True:
            survivor.portal.call(sweep_once, service, lease, 5.0)  # type: ignore[attr-defined]
            after = survivor.get(f"/v1/invocations/{dead.id}").json()["invocation"]
            if after["status"] != "running" or utcnow() > deadline:
                break
            survivor.portal.call(asyncio.sleep, 0.2)  # type: ignore[attr-defined]
        assert after["status"] == "failed"
        assert after["error"]["code"] == "unavailable"
        assert after["error"]["retryable"] is True
        assert after["completed_at"] is not None


async def test_a_live_replica_keeps_its_long_invocation_running(
    valkey_settings: Settings,
) -> None:
    settings = leased(valkey_settings)
    service = build_session_service(settings, build_executor(settings))
    session = await service.create_session(
        CreateSession(principal=Principal(tenant_id="t", actor_id="a"))
    )
    call = asyncio.create_task(
        service.invoke(session.id, "test.sleep", InvokeCommand(args={"seconds": 2.5}))
    )
    swept = 0
    while not call.done():
        swept += await service.sweep_abandoned()
        await asyncio.sleep(0.2)
    outcome = await call
    assert swept == 0
    assert outcome.invocation.status is InvocationStatus.SUCCEEDED
