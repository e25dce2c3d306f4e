"""The isolation attacks over HTTP through Ray Serve, in trusted_headers mode, against executor
replicas that hold (fake) service secrets in their environment: a principal with no roles runs
its own test code with python.test and tries to reach another tenant and the service."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ray import serve

from serve_app.app import Ingress, SessionManager, ToolExecutor
from serve_app.config import Settings
from tests.e2e.conftest import ServeApp
from tests.support.processes import unique_seconds, wait_until_none_left_with_argument

pytestmark = pytest.mark.serve

TOKEN = "e2e-isolation-" + "t" * 40
VALKEY_PASSWORD = "e2e-valkey-password-" + "p" * 20
SECRET = "tenant-b-secret-" + "q" * 16
SECRETS_ENV = {"WORKSPACE_AUTH_SHARED_TOKEN": TOKEN, "VALKEY_PASSWORD": VALKEY_PASSWORD}


def _headers(tenant: str) -> dict[str, str]:
    return {
        "X-Workspace-Auth-Token": TOKEN,
        "X-Workspace-Tenant-Id": tenant,
        "X-Workspace-Actor-Id": f"agent-{tenant}",
        "X-Workspace-Roles": "",
    }


@pytest.fixture(scope="module")
def isolated(serve_app: ServeApp) -> Iterator[httpx.Client]:
    settings = Settings(
        auth_mode="trusted_headers",
        auth_shared_token=TOKEN,
        workspace_root=serve_app.data / "isolation-workspaces",
        artifact_root=serve_app.data / "isolation-artifacts",
        extra_tool_families=["tests.support.tools:TOOLS"],
    )
    secrets = {"runtime_env": {"env_vars": SECRETS_ENV}}
    executor = ToolExecutor.options(ray_actor_options={"num_cpus": 0.1, **secrets})
    manager = SessionManager.options(ray_actor_options={"num_cpus": 0.1, **secrets})
    ingress = Ingress.options(ray_actor_options={"num_cpus": 0.1, **secrets})
    app = ingress.bind(manager.bind(executor.bind(settings), settings), settings)
    serve.run(app, name="isolation", route_prefix="/isolation")
    try:
        with httpx.Client(base_url=f"{serve_app.url}/isolation", timeout=120) as client:
            yield client
    finally:
        serve.delete("isolation")


def _session(http: httpx.Client, tenant: str) -> dict[str, Any]:
    created = http.post("/v1/sessions", json={}, headers=_headers(tenant))
    assert created.status_code == 201, created.text
    session: dict[str, Any] = created.json()["session"]
    return session


def _write(http: httpx.Client, session: dict[str, Any], tenant: str, path: str, text: str) -> None:
    response = http.post(
        f"/v1/sessions/{session['id']}/tools/fs.write_file/invoke",
        json={"args": {"path": path, "content": text}, "approved": True},
        headers=_headers(tenant),
    )
    assert response.status_code == 200, response.text


def _python_test(http: httpx.Client, session: dict[str, Any], tenant: str) -> httpx.Response:
    return http.post(
        f"/v1/sessions/{session['id']}/tools/python.test/invoke",
        json={"args": {"target": "tests"}},
        headers=_headers(tenant),
    )


def test_tool_code_reaches_neither_another_tenant_nor_a_secret(
    isolated: httpx.Client,
) -> None:
    victim = _session(isolated, "tenant-b")
    _write(isolated, victim, "tenant-b", "secret.txt", SECRET)
    attacker = _session(isolated, "tenant-a")
    victim_file = f"{victim['workspace_path']}/secret.txt"
    backwards = [s[::-1] for s in (TOKEN, VALKEY_PASSWORD, SECRET)]
    test = f"""
        import os
        import pytest

        SECRETS = [s[::-1].encode() for s in {backwards!r}]

        def test_other_tenant_is_not_there():
            with pytest.raises(OSError):
                open({victim_file!r}).read()

        def test_no_secret_in_any_process_or_file():
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                for name in ("environ", "cmdline"):
                    try:
                        data = open(f"/proc/{{pid}}/{{name}}", "rb").read()
                    except OSError:
                        continue
                    assert not any(secret in data for secret in SECRETS), (pid, name)
            for top in os.listdir("/"):
                if top in ("proc", "sys", "dev", "usr"):
                    continue
                for directory, _, files in os.walk("/" + top):
                    for name in files:
                        try:
                            with open(os.path.join(directory, name), "rb") as handle:
                                data = handle.read(1 << 20)
                        except OSError:
                            continue
                        assert not any(s in data for s in SECRETS), os.path.join(directory, name)
        """
    _write(isolated, attacker, "tenant-a", "tests/test_attack.py", textwrap.dedent(test))
    response = _python_test(isolated, attacker, "tenant-a")
    assert response.status_code == 200, response.text
    output = response.json()["invocation"]["output"]
    assert output["exit_code"] == 0, output["output"]
    assert "2 passed" in output["output"]


def test_a_setsid_daemon_is_gone_after_the_call_and_after_a_timeout(
    isolated: httpx.Client,
) -> None:
    tenant = "tenant-c"
    session = _session(isolated, tenant)
    lingering = unique_seconds(300)
    _write(
        isolated,
        session,
        tenant,
        "tests/test_daemon.py",
        textwrap.dedent(
            f"""
            import subprocess

            def test_leave_a_daemon():
                subprocess.Popen(["setsid", "sleep", "{lingering}"], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            """
        ),
    )
    response = _python_test(isolated, session, tenant)
    assert response.status_code == 200 and response.json()["invocation"]["exit_code"] == 0
    assert wait_until_none_left_with_argument(lingering), "the daemon outlived the call"

    hanging = unique_seconds(30)
    invoked = isolated.post(
        f"/v1/sessions/{session['id']}/tools/test.hang/invoke",
        json={"args": {"seconds": float(hanging)}},
        headers=_headers(tenant),
    )
    assert invoked.status_code == 504, invoked.text
    assert wait_until_none_left_with_argument(str(float(hanging))), "the daemon outlived it"
