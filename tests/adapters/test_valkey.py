"""Valkey stores against a real valkey-server: key layout, TTLs, atomic correlation claims,
inline-output cap, the sweeper lease."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import redis.asyncio as aioredis

from serve_app.adapters.valkey import ValkeyLease, ValkeySessionStore
from serve_app.config import Settings
from serve_app.domain.models import (
    Invocation,
    InvocationStatus,
    LogLine,
    Principal,
    Runtime,
    Session,
    utcnow,
)
from serve_app.wiring import build_stores


def client_for(settings: Settings) -> aioredis.Redis:
    host, port = settings.valkey_address
    return aioredis.Redis(host=host, port=port)


def a_session(session_id: str = "s-1", ttl: int = 600) -> Session:
    now = utcnow()
    return Session(
        id=session_id,
        workspace_path=f"/tmp/ws/t/{session_id}/repo",
        runtime=Runtime(kind="local", workdir=f"/tmp/ws/t/{session_id}/repo"),
        allowed_paths=["."],
        principal=Principal(tenant_id="t", actor_id="a", roles=["developer"]),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )


def an_invocation(invocation_id: str, correlation: str | None = None) -> Invocation:
    return Invocation(
        id=invocation_id,
        session_id="s-1",
        tool_name="fs.read_file",
        correlation_id=correlation,
        status=InvocationStatus.RUNNING,
        started_at=utcnow(),
        span_name="fs.read_file",
    )


async def test_session_key_layout_and_ttl(valkey_settings: Settings) -> None:
    stores = build_stores(valkey_settings)
    client = client_for(valkey_settings)
    session = a_session(ttl=120)
    await stores.sessions.put(session)
    key = f"{valkey_settings.session_store_key_prefix}:{session.id}"
    assert json.loads(await client.get(key))["id"] == session.id
    ttl_ms = await client.pttl(key)
    assert 110_000 < ttl_ms <= 120_000
    assert await stores.sessions.get(session.id) == session
    await stores.sessions.delete(session.id)
    assert await stores.sessions.get(session.id) is None
    assert await client.exists(key) == 0
    await client.aclose()
    await stores.close()


async def test_expired_sessions_are_found_after_their_key_is_gone(
    valkey_settings: Settings,
) -> None:
    stores = build_stores(valkey_settings)
    store = stores.sessions
    assert isinstance(store, ValkeySessionStore)
    short, long = a_session("short", ttl=1), a_session("long", ttl=600)
    await store.put(short)
    await store.put(long)
    client = client_for(valkey_settings)
    key = f"{valkey_settings.session_store_key_prefix}:short"
    deadline = asyncio.get_running_loop().time() + 5
    while await client.exists(key) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert await store.get("short") is None, "Valkey expires the key at expires_at"
    expired = await store.expired(utcnow() + timedelta(seconds=2), 10)
    assert [s.id for s in expired] == ["short"]
    await store.delete("short")
    assert await store.expired(utcnow() + timedelta(seconds=2), 10) == []
    await client.aclose()
    await stores.close()


async def test_invocation_records_and_correlation_keys(valkey_settings: Settings) -> None:
    stores = build_stores(valkey_settings)
    client = client_for(valkey_settings)
    store = stores.invocations
    first = an_invocation("inv-1", correlation="run/1 x")
    assert await store.create(first) is None
    prefix = valkey_settings.invocation_store_key_prefix
    assert await client.get(f"{prefix}:corr:s-1:fs.read_file:run%2F1%20x") == b"inv-1"
    assert 0 < await client.pttl(f"{prefix}:inv-1") <= 86_400_000
    holder = await store.create(an_invocation("inv-2", correlation="run/1 x"))
    assert holder is not None and holder.id == "inv-1"
    assert await store.get("inv-2") is None, "a losing claim stores nothing"
    done = first.model_copy(update={"status": InvocationStatus.SUCCEEDED, "output": {"ok": 1}})
    await store.update(done)
    assert await store.get("inv-1") == done
    found = await store.find_by_correlation("s-1", "fs.read_file", "run/1 x")
    assert found == done
    await client.aclose()
    await stores.close()


async def test_concurrent_claims_have_exactly_one_winner(valkey_settings: Settings) -> None:
    stores_a, stores_b = build_stores(valkey_settings), build_stores(valkey_settings)
    claims = [
        (stores_a if n % 2 else stores_b).invocations.create(an_invocation(f"inv-{n}", "same"))
        for n in range(20)
    ]
    results = await asyncio.gather(*claims)
    assert sum(result is None for result in results) == 1
    winners = {result.id for result in results if result is not None}
    assert len(winners) == 1
    await stores_a.close()
    await stores_b.close()


async def test_large_output_and_logs_stay_out_of_the_record(valkey_settings: Settings) -> None:
    settings = valkey_settings.model_copy(update={"inline_output_max_bytes": 1024})
    stores = build_stores(settings)
    client = client_for(settings)
    big = an_invocation("inv-big").model_copy(
        update={
            "status": InvocationStatus.SUCCEEDED,
            "output": {"content": "x" * 5000},
            "output_ref": "artifact-0000000000000001",
            "logs": [LogLine(at=utcnow(), channel="stdout", message="y" * 5000)],
            "logs_ref": "artifact-0000000000000002",
        }
    )
    small = an_invocation("inv-small").model_copy(
        update={"output": {"content": "x"}, "output_ref": "artifact-0000000000000003"}
    )
    for record in (big, small):
        await stores.invocations.create(record)
    raw = json.loads(await client.get(f"{settings.invocation_store_key_prefix}:inv-big"))
    assert "output" not in raw and "logs" not in raw
    assert raw["output_ref"] == "artifact-0000000000000001"
    raw = json.loads(await client.get(f"{settings.invocation_store_key_prefix}:inv-small"))
    assert raw["output"] == {"content": "x"}
    await client.aclose()
    await stores.close()


async def test_the_sweeper_lease_has_one_holder(valkey_settings: Settings) -> None:
    client = client_for(valkey_settings)
    key = f"{valkey_settings.session_store_key_prefix}:sweeper-lease"
    one, two = ValkeyLease(client, key, "one"), ValkeyLease(client, key, "two")
    assert await one.acquire(0.3)
    assert not await two.acquire(0.3)
    assert await one.acquire(0.3), "the holder renews"
    deadline = asyncio.get_running_loop().time() + 5
    while not await two.acquire(0.3):
        assert asyncio.get_running_loop().time() < deadline, "an abandoned lease frees itself"
        await asyncio.sleep(0.05)
    assert not await one.acquire(0.3)
    await client.aclose()
