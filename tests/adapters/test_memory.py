"""The in-memory invocation store stays bounded: in records and in bytes, with large outputs kept
only in their artifacts."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from serve_app.adapters.memory import MemoryInvocationStore
from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.domain.models import Invocation, InvocationStatus, utcnow
from serve_app.wiring import build_executor, build_session_service
from tests.conftest import invoke, open_session

KIB = 1024


def record(n: int, output: str, output_ref: str | None = None) -> Invocation:
    return Invocation(
        id=f"inv-{n}",
        session_id="s",
        tool_name="fs.read_file",
        status=InvocationStatus.SUCCEEDED,
        started_at=utcnow(),
        output={"content": output},
        output_ref=output_ref,
    )


async def test_bytes_are_capped_dropping_the_oldest_records() -> None:
    store = MemoryInvocationStore(max_bytes=1024 * KIB, inline_max_bytes=512 * KIB)
    for n in range(40):
        await store.create(record(n, "x" * 100 * KIB))
    kept = [n for n in range(40) if await store.get(f"inv-{n}") is not None]
    assert kept == list(range(40 - len(kept), 40))  # the newest, in order
    assert 5 <= len(kept) <= 11
    assert await store.get("inv-39") is not None and await store.get("inv-0") is None


async def test_outputs_over_the_inline_cap_live_only_in_their_artifacts() -> None:
    store = MemoryInvocationStore(max_bytes=1024 * KIB, inline_max_bytes=KIB)
    for n in range(40):
        await store.create(record(n, "x" * 100 * KIB, output_ref=f"artifact-{n}"))
    for n in range(40):
        found = await store.get(f"inv-{n}")
        assert found is not None and found.output is None and found.output_ref == f"artifact-{n}"
    small = record(99, "tiny", output_ref="artifact-99")
    await store.create(small)
    assert (await store.get("inv-99")).output == {"content": "tiny"}  # type: ignore[union-attr]


def test_a_large_output_is_still_served_in_full(tmp_path: Path) -> None:
    settings = Settings(
        workspace_root=tmp_path / "workspaces",
        artifact_root=tmp_path / "artifacts",
        inline_output_max_bytes=KIB,
    )
    service = build_session_service(settings, build_executor(settings))
    with TestClient(create_app(service)) as client:
        session = open_session(client)
        content = "line\n" * 20_000
        invoke(
            client,
            session["id"],
            "fs.write_file",
            {"path": "big.txt", "content": content},
            approved=True,
        )
        status, body = invoke(
            client, session["id"], "fs.read_file", {"path": "big.txt", "max_bytes": 1024 * KIB}
        )
        assert status == 200
        invocation_id = body["invocation"]["id"]  # type: ignore[index]
        fetched = client.get(f"/v1/invocations/{invocation_id}").json()["invocation"]
        assert fetched["output"]["content"] == content
