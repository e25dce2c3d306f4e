"""The artifact.* tools on real files: driven through the ExecutionService, and over HTTP to show
that an uploaded artifact lands in the durable artifact storage."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serve_app.domain.capability import PathField
from serve_app.domain.errors import ErrorCode
from serve_app.domain.execution import ExecutionResult
from serve_app.domain.models import Principal, Runtime, Session, utcnow
from serve_app.domain.policy import evaluate
from serve_app.execution.executor import ExecutionService
from serve_app.tools import artifact
from tests.conftest import invoke, open_session
from tests.support.execution import run

KIB, MIB = 1024, 1024 * 1024


# helpers ----------------------------------------------------------------------------------------


def make_session(workspace: Path, allowed_paths: list[str] | None = None) -> Session:
    now = utcnow()
    return Session(
        id="sess-artifact",
        workspace_path=str(workspace),
        runtime=Runtime(kind="local"),
        allowed_paths=allowed_paths if allowed_paths is not None else ["."],
        principal=Principal(tenant_id="tenant", actor_id="agent", roles=["developer"]),
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


@pytest.fixture
def session(workspace: Path) -> Session:
    return make_session(workspace)


async def ok(
    service: ExecutionService, session: Session, tool: str, args: dict[str, Any]
) -> ExecutionResult:
    result = await run(service, session, tool, args)
    assert result.error is None, result.error
    assert result.exit_code == 0
    assert isinstance(result.output, dict) and result.output["exit_code"] == 0
    return result


async def fails(
    service: ExecutionService, session: Session, tool: str, args: dict[str, Any], code: ErrorCode
) -> ExecutionResult:
    result = await run(service, session, tool, args)
    assert result.error is not None, result.output
    assert result.error.code == code, result.error
    assert result.artifacts == []
    return result


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def outside_secret(workspace: Path) -> Path:
    outside = workspace.parent / "outside"
    outside.mkdir(exist_ok=True)
    secret = outside / "secret.txt"
    secret.write_text("top secret\n")
    return secret


# catalog metadata (contract §4.2) ---------------------------------------------------------------


def test_catalog_metadata_matches_the_contract() -> None:
    tools = {tool.name: tool.capability for tool in artifact.TOOLS}
    expected = {
        # name: (side effects, idempotency, output KB, arguments, required)
        "artifact.upload": (
            "reversible",
            "best-effort",
            1024,
            {"path", "name", "content_type", "max_bytes"},
            ["path"],
        ),
        "artifact.download": (
            "none",
            "guaranteed",
            2048,
            {"path", "encoding", "max_bytes"},
            ["path"],
        ),
        "artifact.list": (
            "none",
            "guaranteed",
            1024,
            {"path", "recursive", "pattern", "max_entries"},
            [],
        ),
    }
    assert set(tools) == set(expected)
    for name, (effects, idempotency, output_kb, arguments, required) in expected.items():
        capability = tools[name]
        assert (capability.scope, capability.risk_level) == ("workspace", "low"), name
        assert capability.requires_approval is False, name
        assert capability.side_effects == effects, name
        assert capability.idempotency == idempotency, name
        assert capability.constraints.timeout_seconds == 45, name
        assert capability.constraints.output_limit_kb == output_kb, name
        assert set(capability.input_schema["properties"]) == arguments, name
        assert capability.input_schema["required"] == required, name
        assert capability.policy.path_fields == [PathField(field="path")], name
    for name in ("artifact.upload", "artifact.download"):
        limits = tools[name].input_schema["properties"]["max_bytes"]
        assert (limits["minimum"], limits["maximum"]) == (1024, 10 * MIB)
    assert tools["artifact.download"].input_schema["properties"]["encoding"]["enum"] == [
        "base64",
        "utf8",
    ]
    entries = tools["artifact.list"].input_schema["properties"]["max_entries"]
    assert (entries["minimum"], entries["maximum"]) == (1, 2000)


def test_policy_checks_the_path_against_allowed_paths(workspace: Path) -> None:
    session = make_session(workspace, allowed_paths=["dist"])
    for tool in artifact.TOOLS:
        allowed = evaluate(tool.capability, session, {"path": "dist/app.tar.gz"}, False)
        assert allowed.allowed, tool.name
        denied = evaluate(tool.capability, session, {"path": "src/main.py"}, False)
        assert (denied.allowed, denied.reason) == (False, "path outside allowed_paths"), tool.name


# artifact.upload --------------------------------------------------------------------------------


async def test_upload_attaches_the_file_as_an_artifact(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    data = bytes(range(256)) * 10
    (workspace / "dist").mkdir()
    (workspace / "dist" / "app.bin").write_bytes(data)
    result = await ok(executor, session, "artifact.upload", {"path": "dist/app.bin"})
    assert result.output == {
        "path": "dist/app.bin",
        "artifact_name": "app.bin",
        "content_type": "application/octet-stream",
        "size_bytes": len(data),
        "sha256": sha256(data),
        "truncated": False,
        "summary": f"uploaded artifact app.bin from dist/app.bin ({len(data)} bytes)",
        "output": f"uploaded artifact app.bin from dist/app.bin ({len(data)} bytes)",
        "exit_code": 0,
    }
    assert [(a.name, a.content_type, a.data) for a in result.artifacts] == [
        ("app.bin", "application/octet-stream", data)
    ]
    assert result.logs[0].message == result.output["summary"]


async def test_upload_name_and_content_type(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "report.json").write_text('{"ok": true}')
    args = {
        "path": "report.json",
        "name": "../../etc/passwd",
        "content_type": "application/json; charset=utf-8",
    }
    result = await ok(executor, session, "artifact.upload", args)
    assert result.output["artifact_name"] == "passwd"
    assert result.artifacts[0].name == "passwd"
    assert result.artifacts[0].content_type == "application/json; charset=utf-8"
    for bad in ("json", "text/plain\r\nX-Evil: 1", "a/b c"):
        await fails(
            executor,
            session,
            "artifact.upload",
            {"path": "report.json", "content_type": bad},
            ErrorCode.INVALID_ARGUMENT,
        )


async def test_upload_truncates_at_max_bytes(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    data = b"x" * (3 * KIB)
    (workspace / "big.log").write_bytes(data)
    result = await ok(executor, session, "artifact.upload", {"path": "big.log", "max_bytes": KIB})
    assert result.output["truncated"] is True
    assert result.output["size_bytes"] == KIB
    assert result.output["sha256"] == sha256(data[:KIB])
    assert result.artifacts[0].data == data[:KIB]
    exact = await ok(
        executor, session, "artifact.upload", {"path": "big.log", "max_bytes": 3 * KIB}
    )
    assert exact.output["truncated"] is False and exact.artifacts[0].data == data


async def test_upload_default_limit_is_two_mib(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "huge.bin").write_bytes(b"\0" * (2 * MIB + 10))
    result = await ok(executor, session, "artifact.upload", {"path": "huge.bin"})
    assert result.output["truncated"] is True
    assert len(result.artifacts[0].data) == 2 * MIB


async def test_upload_errors(executor: ExecutionService, session: Session, workspace: Path) -> None:
    (workspace / "dir").mkdir()
    await fails(executor, session, "artifact.upload", {"path": "nope"}, ErrorCode.NOT_FOUND)
    await fails(executor, session, "artifact.upload", {"path": "dir"}, ErrorCode.INVALID_ARGUMENT)
    secret = outside_secret(workspace)
    (workspace / "link").symlink_to(secret)
    denied = await fails(
        executor, session, "artifact.upload", {"path": "link"}, ErrorCode.POLICY_DENIED
    )
    assert "top secret" not in str(denied.output)
    await fails(
        executor,
        session,
        "artifact.upload",
        {"path": "../outside/secret.txt"},
        ErrorCode.POLICY_DENIED,
    )
    narrow = make_session(workspace, allowed_paths=["dist"])
    (workspace / "x.txt").write_text("x")
    await fails(executor, narrow, "artifact.upload", {"path": "x.txt"}, ErrorCode.POLICY_DENIED)


async def test_upload_fifo_is_refused_without_hanging(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    os.mkfifo(workspace / "pipe")
    await fails(executor, session, "artifact.upload", {"path": "pipe"}, ErrorCode.INVALID_ARGUMENT)


# artifact.download ------------------------------------------------------------------------------


async def test_download_base64_by_default(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    data = b"\x00\xffbinary\x80"
    (workspace / "blob.bin").write_bytes(data)
    result = await ok(executor, session, "artifact.download", {"path": "blob.bin"})
    output = result.output
    assert output["encoding"] == "base64"
    assert base64.b64decode(output["content_base64"]) == data
    assert "content" not in output
    assert (output["size_bytes"], output["sha256"], output["truncated"]) == (
        len(data),
        sha256(data),
        False,
    )
    assert output["summary"] == f"downloaded artifact from blob.bin ({len(data)} bytes)"
    assert result.artifacts == []


async def test_download_utf8(executor: ExecutionService, session: Session, workspace: Path) -> None:
    text = "coverage: 93% ✓\n"
    (workspace / "coverage.txt").write_text(text)
    output = (
        await ok(
            executor, session, "artifact.download", {"path": "coverage.txt", "encoding": "utf8"}
        )
    ).output
    assert output["content"] == text and "content_base64" not in output
    assert output["sha256"] == sha256(text.encode())
    (workspace / "blob.bin").write_bytes(b"ok\xff\xfe")
    failed = await fails(
        executor,
        session,
        "artifact.download",
        {"path": "blob.bin", "encoding": "utf8"},
        ErrorCode.INVALID_ARGUMENT,
    )
    assert failed.error is not None and "encoding=base64" in failed.error.message


async def test_download_truncation_keeps_utf8_whole(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    text = "a" * 1023 + "é" + "tail"
    (workspace / "t.txt").write_text(text)
    output = (
        await ok(
            executor,
            session,
            "artifact.download",
            {"path": "t.txt", "encoding": "utf8", "max_bytes": KIB},
        )
    ).output
    assert output["truncated"] is True
    assert output["content"] == "a" * 1023
    assert output["size_bytes"] == 1023 and output["sha256"] == sha256(b"a" * 1023)
    raw = (
        await ok(executor, session, "artifact.download", {"path": "t.txt", "max_bytes": KIB})
    ).output
    assert base64.b64decode(raw["content_base64"]) == text.encode()[:KIB]


async def test_download_default_limit_is_256_kib(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    (workspace / "big.txt").write_text("y" * (300 * KIB))
    output = (await ok(executor, session, "artifact.download", {"path": "big.txt"})).output
    assert output["truncated"] is True and output["size_bytes"] == 256 * KIB


async def test_download_more_than_fits_is_cut_to_the_output_limit(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    """artifact.download's output is at most 2048 KiB: a larger max_bytes is cut (and says so)
    instead of failing the call."""
    fits = 2048 * KIB * 3 // 4
    data = bytes(range(256)) * (12 * KIB)  # 3 MiB
    (workspace / "big.bin").write_bytes(data)
    args: dict[str, Any] = {"path": "big.bin", "max_bytes": 10 * MIB}
    output = (await ok(executor, session, "artifact.download", args)).output
    kept = base64.b64decode(output["content_base64"])
    assert output["truncated"] is True and kept == data[: len(kept)]
    assert len(kept) == fits // 4 * 3 and output["size_bytes"] == len(kept)
    assert output["sha256"] == sha256(kept)
    assert "cut to fit the output limit of 2048 KiB" in output["summary"]
    # Control characters are valid UTF-8 but six bytes each in JSON (\u0000).
    (workspace / "zeros.txt").write_bytes(b"\0" * (3 * MIB))
    args = {"path": "zeros.txt", "encoding": "utf8", "max_bytes": 10 * MIB}
    text = (await ok(executor, session, "artifact.download", args)).output
    assert text["truncated"] is True and set(text["content"]) == {"\0"}
    assert len(text["content"]) * 6 <= fits < (len(text["content"]) + 1) * 6 + 2
    assert text["size_bytes"] == len(text["content"])


async def test_download_errors(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    await fails(executor, session, "artifact.download", {"path": "nope"}, ErrorCode.NOT_FOUND)
    await fails(executor, session, "artifact.download", {"path": "."}, ErrorCode.INVALID_ARGUMENT)
    secret = outside_secret(workspace)
    (workspace / "link").symlink_to(secret)
    await fails(executor, session, "artifact.download", {"path": "link"}, ErrorCode.POLICY_DENIED)
    (workspace / "inside.txt").write_text("inside\n")
    (workspace / "alias").symlink_to(workspace / "inside.txt")
    followed = await ok(
        executor, session, "artifact.download", {"path": "alias", "encoding": "utf8"}
    )
    assert followed.output["content"] == "inside\n"


# artifact.list ----------------------------------------------------------------------------------


@pytest.fixture
def tree(workspace: Path) -> Path:
    for name, size in {
        "README.md": 3,
        "dist/app.tar.gz": 10,
        "dist/app.zip": 5,
        "dist/nested/lib.tar.gz": 7,
        "src/main.py": 2,
        ".git/objects/pack.tar.gz": 1,
    }.items():
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"z" * size)
    return workspace


@pytest.mark.usefixtures("tree")
async def test_list_is_recursive_by_default(executor: ExecutionService, session: Session) -> None:
    output = (await ok(executor, session, "artifact.list", {})).output
    assert output["artifacts"] == [
        {"path": "README.md", "size_bytes": 3},
        {"path": "dist/app.tar.gz", "size_bytes": 10},
        {"path": "dist/app.zip", "size_bytes": 5},
        {"path": "dist/nested/lib.tar.gz", "size_bytes": 7},
        {"path": "src/main.py", "size_bytes": 2},
    ]
    assert (output["path"], output["recursive"], output["pattern"]) == (".", True, "")
    assert (output["count"], output["truncated"]) == (5, False)
    assert output["summary"] == "listed 5 artifact candidates"


@pytest.mark.usefixtures("tree")
async def test_list_subdirectory_without_recursion(
    executor: ExecutionService, session: Session
) -> None:
    output = (
        await ok(executor, session, "artifact.list", {"path": "dist", "recursive": False})
    ).output
    assert [entry["path"] for entry in output["artifacts"]] == ["dist/app.tar.gz", "dist/app.zip"]
    assert output["path"] == "dist"


@pytest.mark.usefixtures("tree")
async def test_list_pattern_matches_names_or_whole_paths(
    executor: ExecutionService, session: Session
) -> None:
    by_name = (await ok(executor, session, "artifact.list", {"pattern": "*.tar.gz"})).output
    assert [entry["path"] for entry in by_name["artifacts"]] == [
        "dist/app.tar.gz",
        "dist/nested/lib.tar.gz",
    ]
    by_path = (await ok(executor, session, "artifact.list", {"pattern": "dist/*.tar.gz"})).output
    assert [entry["path"] for entry in by_path["artifacts"]] == ["dist/app.tar.gz"]
    assert artifact.pattern_matches("a/b/c.txt", "*/*/c.txt")
    assert not artifact.pattern_matches("a/b/c.txt", "a/*.txt")
    assert artifact.pattern_matches("a/b/c.txt", "c.*")
    assert artifact.pattern_matches("a/b/c.txt", "")


@pytest.mark.usefixtures("tree")
async def test_list_truncation_is_exact(executor: ExecutionService, session: Session) -> None:
    two = (await ok(executor, session, "artifact.list", {"max_entries": 2})).output
    assert (two["count"], two["truncated"]) == (2, True)
    five = (await ok(executor, session, "artifact.list", {"max_entries": 5})).output
    assert (five["count"], five["truncated"]) == (5, False)
    matched = (
        await ok(executor, session, "artifact.list", {"pattern": "*.zip", "max_entries": 1})
    ).output
    assert (matched["count"], matched["truncated"]) == (1, False)


async def test_list_does_not_follow_symlinks(
    executor: ExecutionService, session: Session, workspace: Path
) -> None:
    secret = outside_secret(workspace)
    (workspace / "real.txt").write_text("real")
    (workspace / "file-link").symlink_to(secret)
    (workspace / "dir-link").symlink_to(secret.parent)
    (workspace / "inner-link").symlink_to(workspace / "real.txt")
    output = (await ok(executor, session, "artifact.list", {})).output
    assert [entry["path"] for entry in output["artifacts"]] == ["real.txt"]


async def test_list_single_file_and_errors(
    executor: ExecutionService, session: Session, tree: Path
) -> None:
    single = (await ok(executor, session, "artifact.list", {"path": "dist/app.zip"})).output
    assert single["artifacts"] == [{"path": "dist/app.zip", "size_bytes": 5}]
    await fails(executor, session, "artifact.list", {"path": "missing"}, ErrorCode.NOT_FOUND)
    await fails(executor, session, "artifact.list", {"path": "../"}, ErrorCode.POLICY_DENIED)
    narrow = make_session(tree, allowed_paths=["dist"])
    await fails(executor, narrow, "artifact.list", {"path": "src"}, ErrorCode.POLICY_DENIED)
    inside = (await ok(executor, narrow, "artifact.list", {"path": "dist"})).output
    assert inside["count"] == 3


# over HTTP --------------------------------------------------------------------------------------


def test_http_upload_is_stored_as_an_invocation_artifact(client: TestClient) -> None:
    session = open_session(client)
    data = b"\x7fELF fake binary\x00" * 100
    Path(str(session["workspace_path"]), "app").write_bytes(data)
    status, body = invoke(
        client,
        session["id"],
        "artifact.upload",
        {"path": "app", "name": "app-linux-amd64", "content_type": "application/x-elf"},
    )
    assert status == 200, body
    invocation = body["invocation"]
    assert invocation["output"]["sha256"] == sha256(data)
    listed = client.get(f"/v1/invocations/{invocation['id']}/artifacts").json()["artifacts"]
    uploaded = next(a for a in listed if a["name"] == "app-linux-amd64")
    assert uploaded["content_type"] == "application/x-elf"
    assert (uploaded["size_bytes"], uploaded["sha256"]) == (len(data), sha256(data))
    assert Path(uploaded["path"]).read_bytes() == data
    assert {a["name"] for a in listed} == {
        "app-linux-amd64",
        "invocation-output.json",
        "invocation-logs.jsonl",
    }


def test_http_errors(client: TestClient) -> None:
    session = open_session(client, allowed_paths=["dist"])
    status, body = invoke(client, session["id"], "artifact.download", {"path": "secret.txt"})
    assert (status, body["error"]["message"]) == (403, "path outside allowed_paths")
    status, body = invoke(client, session["id"], "artifact.download", {"path": "dist/none"})
    assert (status, body["error"]["code"]) == (500, "not_found")
    status, body = invoke(
        client, session["id"], "artifact.upload", {"path": "dist/a", "max_bytes": 100}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_argument")
