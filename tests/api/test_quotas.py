"""Quotas enforced across two SessionManager replicas sharing a real Valkey."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import redis

from serve_app.adapters.quotas import MemoryQuotaStore, ValkeyQuotaStore
from serve_app.config import Settings
from tests.conftest import invoke, open_session, principal
from tests.support.replicas import replica


@contextmanager
def two_replicas(settings: Settings, **limits: int) -> Iterator[tuple[object, object]]:
    configured = settings.model_copy(
        update={**limits, "quota_key_prefix": settings.session_store_key_prefix + ":quota"}
    )
    with replica(configured) as a, replica(configured) as b:
        yield a, b


def _fresh_window(margin: float = 5.0) -> None:
    """Rate windows are wall-clock minutes: start a counting test well inside one."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def test_session_rate_limit_counts_attempts_on_every_replica(valkey_settings: Settings) -> None:
    with two_replicas(valkey_settings, rate_limit_per_minute=3) as (a, b):
        session = open_session(a)
        _fresh_window()
        statuses = [invoke(client, session["id"], "fs.list", {})[0] for client in (a, b, a)]
        assert statuses == [200, 200, 200]
        response = b.post(f"/v1/sessions/{session['id']}/tools/fs.list/invoke", json={})
        assert response.status_code == 403
        body = response.json()
        assert body["error"] == {
            "code": "policy_denied",
            "message": "session invocation rate limit exceeded",
        }
        assert body["invocation"]["status"] == "denied"
        assert body["invocation"]["error"]["retryable"] is True
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        other = open_session(b)
        assert invoke(a, other["id"], "fs.list", {})[0] == 200, "the limit is per session"


def test_principal_rate_limit_spans_sessions(valkey_settings: Settings) -> None:
    with two_replicas(valkey_settings, rate_limit_per_minute_per_principal=2) as (a, b):
        first = open_session(a)
        second = open_session(b)
        _fresh_window()
        assert invoke(a, first["id"], "fs.list", {})[0] == 200
        assert invoke(b, second["id"], "fs.list", {})[0] == 200
        status, body = invoke(a, second["id"], "fs.list", {})
        assert status == 403
        assert body["error"]["message"] == "principal invocation rate limit exceeded"
        someone_else = open_session(a, principal=principal(actor="agent-2"))
        assert invoke(b, someone_else["id"], "fs.list", {})[0] == 200


def test_concurrency_limit_holds_across_replicas(valkey_settings: Settings) -> None:
    with two_replicas(valkey_settings, max_concurrency_per_session=1) as (a, b):
        session = open_session(a)
        host, port = valkey_settings.valkey_address
        slots = (
            f"{valkey_settings.session_store_key_prefix}:quota:slots:concurrency:{session['id']}"
        )
        probe = redis.Redis(host=host, port=port)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(invoke, a, session["id"], "test.sleep", {"seconds": 3})
            deadline = time.monotonic() + 10
            while probe.zcard(slots) == 0:
                assert time.monotonic() < deadline, "the slow call never took its slot"
                time.sleep(0.02)
            status, body = invoke(b, session["id"], "fs.list", {})
            assert status == 403
            assert body["error"]["message"] == "session invocation concurrency limit exceeded"
            assert slow.result()[0] == 200
        assert probe.zcard(slots) == 0, "the slot is released when the call ends"
        assert invoke(b, session["id"], "fs.list", {})[0] == 200
        probe.close()


def test_a_slot_of_a_dead_replica_frees_itself(valkey_settings: Settings) -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        host, port = valkey_settings.valkey_address
        import redis.asyncio as aioredis

        client = aioredis.Redis(host=host, port=port)
        store = ValkeyQuotaStore(client, valkey_settings.session_store_key_prefix + ":q")
        taken = await store.acquire("concurrency:s", "inv-dead", 1, 0.3)  # never released
        blocked = await store.acquire("concurrency:s", "inv-next", 1, 5)
        deadline = time.monotonic() + 5
        later = False
        while not later and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            later = await store.acquire("concurrency:s", "inv-next", 1, 5)
        await client.aclose()
        return taken, blocked, later

    assert asyncio.run(scenario()) == (True, False, True)


def test_output_and_artifact_quotas_deny_after_the_run(valkey_settings: Settings) -> None:
    limits = {
        "max_output_bytes_per_invocation": 200,
        "max_artifacts_per_invocation": 2,
        "max_artifact_bytes_per_invocation": 1000,
    }
    with two_replicas(valkey_settings, **limits) as (a, _b):
        session = open_session(a)
        Path(str(session["workspace_path"]), "big.txt").write_text("x" * 500)
        status, body = invoke(a, session["id"], "fs.read_file", {"path": "big.txt"})
        assert (status, body["error"]["message"]) == (403, "invocation output size quota exceeded")
        assert body["invocation"]["status"] == "denied"
        assert "output" not in body["invocation"]
        status, body = invoke(a, session["id"], "test.artifacts", {"count": 3, "size": 1})
        assert body["error"]["message"] == "invocation artifact count quota exceeded"
        status, body = invoke(a, session["id"], "test.artifacts", {"count": 2, "size": 600})
        assert body["error"]["message"] == "invocation artifact size quota exceeded"
        status, body = invoke(a, session["id"], "test.artifacts", {"count": 2, "size": 100})
        assert status == 200
        names = [x["name"] for x in body["invocation"]["artifacts"]]
        assert names == ["part-0.bin", "part-1.bin", "invocation-output.json"]


def test_sessions_per_tenant_across_replicas(valkey_settings: Settings) -> None:
    with two_replicas(valkey_settings, max_sessions_per_tenant=2) as (a, b):
        first = open_session(a)
        open_session(b)
        response = a.post("/v1/sessions", json={"principal": principal()})
        assert response.status_code == 403
        assert response.json()["error"] == {
            "code": "policy_denied",
            "message": "tenant session quota exceeded",
        }
        assert (
            b.post("/v1/sessions", json={"principal": principal(tenant="tenant-b")}).status_code
            == 201
        )
        assert b.delete(f"/v1/sessions/{first['id']}").status_code == 200
        assert a.post("/v1/sessions", json={"principal": principal()}).status_code == 201


def test_memory_quota_store_counts_within_one_process() -> None:
    async def scenario() -> list[int | None]:
        store = MemoryQuotaStore()
        return [await store.hit("k", 2, 60) for _ in range(3)]

    _fresh_window()
    first, second, third = asyncio.run(scenario())
    assert (first, second) == (None, None)
    assert third is not None and 1 <= third <= 60
