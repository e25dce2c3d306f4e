"""JSON log lines carry the request, session and invocation ids of the call being served."""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi.testclient import TestClient

from serve_app import logs
from tests.conftest import invoke, open_session


def _format(message: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("serve_app.x", logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_lines_carry_the_bound_ids_of_their_own_task() -> None:
    async def one(n: int) -> dict[str, object]:
        logs.bind(request=f"req-{n}", session=f"s-{n}", invocation=f"inv-{n}")
        await asyncio.sleep(0)
        return _format("working")

    async def both() -> list[dict[str, object]]:
        return list(await asyncio.gather(one(1), one(2)))

    first, second = asyncio.run(both())
    assert (first["request_id"], first["session_id"], first["invocation_id"]) == (
        "req-1",
        "s-1",
        "inv-1",
    )
    assert second["request_id"] == "req-2"
    assert first["level"] == "warning" and first["message"] == "working"


def test_audit_fields_are_merged_into_the_line() -> None:
    line = _format("audit.tool_invocation", audit={"tool": "fs.list", "status": "succeeded"})
    assert line["tool"] == "fs.list" and line["message"] == "audit.tool_invocation"


def test_x_request_id_is_honoured_and_echoed(client: TestClient) -> None:
    response = client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    hostile = client.get("/healthz", headers={"x-request-id": "a b" + "x" * 200})
    assert hostile.headers["x-request-id"] != "a b" + "x" * 200
    session = open_session(client)
    status, _ = invoke(client, session["id"], "fs.list", {})
    assert status == 200
