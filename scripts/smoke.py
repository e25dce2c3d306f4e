"""The runbook's smoke test over HTTP, with the Python standard library only, so it runs anywhere:
a laptop, CI, or a Ray pod (`kubectl exec -i POD -- python - --url URL < scripts/smoke.py`).

    python3 scripts/smoke.py [--url URL]
        health, create a session, list its tools, fs.write_file (approved), fs.read_file, close.
        Prints health_ok, session_created:<id>, tools_ok, fs_write_ok, fs_read_ok,
        session_closed and SMOKE_OK.
    python3 scripts/smoke.py persistence [--url URL] [--restart-timeout S]
        records two invocations, waits while the operator restarts the service (it must go down
        and come back), then reads both back `succeeded` and the written file again.
    python3 scripts/smoke.py persistence-create [--url URL]
    python3 scripts/smoke.py persistence-check --session ID --ids WRITE,READ [--url URL]
        the two halves of `persistence`, for a restart driven by someone else (the Makefile's
        in-cluster flow restarts the RayService between them).

The URL defaults to $WORKSPACE_URL, else http://127.0.0.1:50053. With WORKSPACE_AUTH_TOKEN set,
every request carries the trusted headers (`trusted_headers` mode, contract §6): the token and
tenant/actor/roles (default e2e-tenant / e2e-workspace / developer,devops, as the contract's
end-to-end test 14), under the header names of WORKSPACE_AUTH_*_HEADER where those are set.
A failed step prints `SMOKE_FAILED: <step>: <what happened>` on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_URL = "http://127.0.0.1:50053"
READ_TOOLS = ("fs.read_file", "fs.read")
WRITE_TOOLS = ("fs.write_file", "fs.write")
POLL_SECONDS = 0.2
SESSION_SECONDS = 3600


class SmokeFailure(Exception):
    """A step did not get the answer it needs; the message says which and what came back."""


@dataclass
class Client:
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={**self.headers, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise SmokeFailure(
                f"cannot reach {self.base_url}: {reason} (is the service up and the URL right? "
                "docs/RUNBOOK.md, 'Triage')"
            ) from None

    def healthy(self) -> bool:
        try:
            status, body = self.call("GET", "/healthz")
        except SmokeFailure:
            return False
        return status == 200 and isinstance(body, dict) and body.get("status") == "ok"


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")[:300]


def _describe(status: int, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"HTTP {status} {error.get('code')}: {error.get('message')}"
    return f"HTTP {status} {json.dumps(body)[:300]}"


def _expect(step: str, status: int, body: Any, wanted: int) -> dict[str, Any]:
    if status != wanted or not isinstance(body, dict):
        raise SmokeFailure(f"{step}: {_describe(status, body)}")
    return body


@dataclass
class Identity:
    tenant: str
    actor: str
    roles: list[str]

    def principal(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant, "actor_id": self.actor, "roles": self.roles}


def trusted_headers(token: str, identity: Identity) -> dict[str, str]:
    """The headers of trusted_headers mode, named as the service names them."""
    names = {
        "WORKSPACE_AUTH_TOKEN_HEADER": "X-Workspace-Auth-Token",
        "WORKSPACE_AUTH_TENANT_HEADER": "X-Workspace-Tenant-Id",
        "WORKSPACE_AUTH_ACTOR_HEADER": "X-Workspace-Actor-Id",
        "WORKSPACE_AUTH_ROLES_HEADER": "X-Workspace-Roles",
    }
    name = {
        variable: os.environ.get(variable, "").strip() or default
        for variable, default in names.items()
    }
    return {
        name["WORKSPACE_AUTH_TOKEN_HEADER"]: token,
        name["WORKSPACE_AUTH_TENANT_HEADER"]: identity.tenant,
        name["WORKSPACE_AUTH_ACTOR_HEADER"]: identity.actor,
        name["WORKSPACE_AUTH_ROLES_HEADER"]: ",".join(identity.roles),
    }


class Smoke:
    """The steps, each printing its line when it passed."""

    def __init__(self, client: Client, identity: Identity, say: Callable[[str], None]) -> None:
        self.client = client
        self.identity = identity
        self.say = say
        self.run_id = f"smoke-{secrets.token_hex(6)}"

    def health(self) -> None:
        status, body = self.client.call("GET", "/healthz")
        body = _expect("health", status, body, 200)
        if body.get("status") != "ok":
            raise SmokeFailure(f"health: status is {body.get('status')!r}, not 'ok'")
        self.say("health_ok")

    def create_session(self) -> str:
        request = {
            "principal": self.identity.principal(),
            "expires_in_seconds": SESSION_SECONDS,
            "metadata": {"purpose": "smoke", "run_id": self.run_id},
        }
        status, body = self.client.call("POST", "/v1/sessions", request)
        session_id = str(_expect("create session", status, body, 201)["session"]["id"])
        self.say(f"session_created:{session_id}")
        return session_id

    def tools(self, session_id: str) -> None:
        status, body = self.client.call("GET", f"/v1/sessions/{session_id}/tools")
        names = {tool.get("name") for tool in _expect("tools", status, body, 200)["tools"]}
        for wanted in (READ_TOOLS, WRITE_TOOLS):
            if not names.intersection(wanted):
                raise SmokeFailure(f"tools: the catalog has none of {', '.join(wanted)}")
        self.say("tools_ok")

    def invoke(self, step: str, session_id: str, tool: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "correlation_id": f"{self.run_id}-{step}"}
        status, answer = self.client.call(
            "POST", f"/v1/sessions/{session_id}/tools/{tool}/invoke", body
        )
        invocation: dict[str, Any] = _expect(step, status, answer, 200)["invocation"]
        if invocation.get("status") != "succeeded":
            raise SmokeFailure(
                f"{step}: invocation {invocation.get('id')} is "
                f"{invocation.get('status')}: {invocation.get('error')}"
            )
        return invocation

    def write(self, session_id: str, path: str, content: str) -> str:
        invocation = self.invoke(
            "fs.write",
            session_id,
            "fs.write_file",
            {"approved": True, "args": {"path": path, "content": content, "create_parents": True}},
        )
        self.say("fs_write_ok")
        return str(invocation["id"])

    def read(self, session_id: str, path: str, expected: str, step: str = "fs.read") -> str:
        invocation = self.invoke(step, session_id, "fs.read_file", {"args": {"path": path}})
        content = (invocation.get("output") or {}).get("content")
        if content != expected:
            raise SmokeFailure(f"{step}: read back {content!r}, wrote {expected!r}")
        return str(invocation["id"])

    def close(self, session_id: str) -> None:
        status, body = self.client.call("DELETE", f"/v1/sessions/{session_id}")
        if _expect("close session", status, body, 200).get("closed") is not True:
            raise SmokeFailure(f"close session: {_describe(status, body)}")
        self.say("session_closed")

    def discard(self, session_id: str) -> None:
        """Best-effort cleanup after a failure; its own failure changes nothing."""
        with contextlib.suppress(SmokeFailure):
            self.client.call("DELETE", f"/v1/sessions/{session_id}")

    def smoke_file(self) -> tuple[str, str]:
        return f"smoke/{self.run_id}.txt", f"hello from {self.run_id}\n"

    # flows ----------------------------------------------------------------------------------

    def run(self) -> None:
        self.health()
        session_id = self.create_session()
        try:
            self.tools(session_id)
            path, content = self.smoke_file()
            self.write(session_id, path, content)
            self.read(session_id, path, content)
            self.say("fs_read_ok")
            self.close(session_id)
        except SmokeFailure:
            self.discard(session_id)
            raise
        self.say("SMOKE_OK")

    def persistence_create(self) -> tuple[str, list[str]]:
        self.health()
        session_id = self.create_session()
        try:
            path, content = self.smoke_file()
            write_id = self.write(session_id, path, content)
            read_id = self.read(session_id, path, content)
            self.say("fs_read_ok")
        except SmokeFailure:
            self.discard(session_id)
            raise
        self.say(f"invocations_created:{write_id},{read_id}")
        return session_id, [write_id, read_id]

    def wait_for_restart(self, timeout: float) -> None:
        self.say(
            f"restart the service now: waiting up to {timeout:g} s for {self.client.base_url}"
            " to stop answering and to come back"
        )
        deadline = time.monotonic() + timeout
        # Seen down, then up: a restart faster than one poll would go unnoticed (and wait out
        # the deadline), but restarting Ray Serve takes seconds.
        for phase, wanted, line in (
            ("stop", False, "service_stopped"),
            ("come back", True, "service_restarted"),
        ):
            while self.client.healthy() != wanted:
                if time.monotonic() > deadline:
                    raise SmokeFailure(f"restart: the service did not {phase} within {timeout:g} s")
                time.sleep(POLL_SECONDS)
            self.say(line)

    def persistence_check(self, session_id: str, invocation_ids: list[str]) -> None:
        recorded: dict[str, Any] = {}
        for invocation_id in invocation_ids:
            status, body = self.client.call("GET", f"/v1/invocations/{invocation_id}")
            if status == 404:
                raise SmokeFailure(
                    f"invocation {invocation_id}: {_describe(status, body)}: the restart lost it "
                    "(are INVOCATION_STORE_BACKEND and SESSION_STORE_BACKEND valkey?)"
                )
            invocation = _expect(f"invocation {invocation_id}", status, body, 200)["invocation"]
            if invocation.get("status") != "succeeded":
                raise SmokeFailure(f"invocation {invocation_id}: {invocation.get('status')}")
            recorded = invocation
            self.say(f"invocation_ok:{invocation_id}")
        # The last one read the file: its recorded output must still match the workspace.
        output = recorded.get("output") or {}
        content, path = output.get("content"), output.get("path")
        if not isinstance(content, str) or not isinstance(path, str):
            raise SmokeFailure("workspace: the read invocation kept no path or content")
        self.read(session_id, path, content, step="workspace")
        self.say("workspace_ok")
        self.close(session_id)
        self.say("PERSISTENCE_OK")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Smoke test of a workspace service over HTTP (standard library only)."
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "persistence", "persistence-create", "persistence-check"],
    )
    parser.add_argument("--url", default=os.environ.get("WORKSPACE_URL") or DEFAULT_URL)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--tenant", default="e2e-tenant")
    parser.add_argument("--actor", default="e2e-workspace")
    parser.add_argument("--roles", default="developer,devops", help="comma-separated")
    parser.add_argument("--restart-timeout", type=float, default=600.0)
    parser.add_argument("--session", help="persistence-check: the session persistence-create made")
    parser.add_argument("--ids", help="persistence-check: WRITE_ID,READ_ID from persistence-create")
    args = parser.parse_args(argv)
    if args.command == "persistence-check" and not (args.session and args.ids):
        parser.error("persistence-check needs --session and --ids")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    identity = Identity(
        tenant=args.tenant,
        actor=args.actor,
        roles=[role.strip() for role in args.roles.split(",") if role.strip()],
    )
    token = os.environ.get("WORKSPACE_AUTH_TOKEN", "")
    headers = trusted_headers(token, identity) if token else {}
    client = Client(args.url.rstrip("/"), headers, args.timeout)
    smoke = Smoke(client, identity, lambda line: print(line, flush=True))
    try:
        if args.command == "run":
            smoke.run()
        elif args.command == "persistence":
            session_id, ids = smoke.persistence_create()
            smoke.wait_for_restart(args.restart_timeout)
            smoke.persistence_check(session_id, ids)
        elif args.command == "persistence-create":
            smoke.persistence_create()
        else:
            ids = [item.strip() for item in args.ids.split(",") if item.strip()]
            smoke.persistence_check(args.session, ids)
    except SmokeFailure as failure:
        print(f"SMOKE_FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
