"""Through Ray Serve with Valkey: no invocation stays `running` when the replica that runs it goes
away, or its caller does.

- SessionManager replica killed (SIGKILL) mid-invocation: the caller gets 503, the lease runs out
  and the sweeper (of the restarted replica) ends the invocation `failed` (unavailable,
  retryable).
- ToolExecutor replica killed mid-invocation: the invocation is `failed` at once, and Serve's new
  executor replica serves the next ones.
- SIGTERM to the SessionManager's process: Ray finishes the calls in flight (the invocation
  succeeds), then Serve replaces the replica.
- Serve stops the SessionManager replica (a redeploy): what ends within
  `graceful_shutdown_timeout_s` succeeds; what outlasts it ends `failed` through its lease.
- The caller goes away: Serve cancels the executor call; the invocation is `failed` at once.

An application of its own: a 2 s lease, a 0.5 s sweep, one SessionManager replica (so the killed
one is the one running the invocation) and quick health checks. The measured times are logged
(`--log-cli-level=WARNING` shows them).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from ray import serve
from ray.serve import Application

from serve_app.config import Settings
from serve_app.domain.invoking import ABANDONED_MESSAGE
from tests.e2e.conftest import ServeApp

pytestmark = pytest.mark.serve
log = logging.getLogger(__name__)

APP = "replica-death"
LEASE_SECONDS = 2
SWEEP_SECONDS = 0.5
# Serve's force-kill of a replica that does not stop in time; `drain` gets half of it.
GRACEFUL_SECONDS = 6.0
# Kill → `failed`: what was left of the lease (≤ 2 s) + Serve noticing the death and starting a
# successor + its first sweeps. Measured 4.4-6.6 s on a busy 2-core machine; the rest is margin.
BOUND_SECONDS = 30.0
PRINCIPAL = {"tenant_id": "e2e-tenant", "actor_id": "e2e-agent", "roles": ["developer"]}


@dataclass(frozen=True)
class DeathApp:
    url: str
    settings: Settings


def compose(settings: Settings, manager_cpus: float = 0.25) -> Application:
    """One replica of each deployment; redeployed with another `manager_cpus`, Serve replaces the
    SessionManager replica (a graceful stop of the old one)."""
    from serve_app.app import Ingress, SessionManager, ToolExecutor

    # Quick health checks: Serve notices a killed replica within about a second.
    executor = ToolExecutor.options(
        health_check_period_s=1,
        graceful_shutdown_timeout_s=GRACEFUL_SECONDS,
        graceful_shutdown_wait_loop_s=0.2,
    ).bind(settings)
    manager = SessionManager.options(
        num_replicas=1,
        ray_actor_options={"num_cpus": manager_cpus},
        health_check_period_s=1,
        health_check_timeout_s=2,
        graceful_shutdown_timeout_s=GRACEFUL_SECONDS,
        graceful_shutdown_wait_loop_s=0.2,
    ).bind(executor, settings)
    app: Application = Ingress.bind(manager, settings)
    return app


@pytest.fixture(scope="module")
def death_app(serve_app: ServeApp, valkey_address: str) -> Iterator[DeathApp]:
    from tests.conftest import valkey_settings_for

    base = Settings(
        workspace_root=serve_app.data / "death-workspaces",
        artifact_root=serve_app.data / "death-artifacts",
        extra_tool_families=["tests.support.tools:TOOLS"],
        invocation_lease_seconds=LEASE_SECONDS,
        sweep_interval_seconds=SWEEP_SECONDS,
    )
    settings = valkey_settings_for(base, valkey_address)
    serve.run(compose(settings), name=APP, route_prefix=f"/{APP}")
    try:
        yield DeathApp(url=f"{serve_app.url}/{APP}", settings=settings)
    finally:
        serve.delete(APP)


@pytest.fixture
def http(death_app: DeathApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=death_app.url, timeout=60) as client:
        yield client


@pytest.fixture
def background() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def replica_pid(deployment: str) -> int:
    """The PID of the deployment's one live replica, from Ray's actor table."""
    from ray._private.state import actors

    prefix = f"SERVE_REPLICA::{APP}#{deployment}#"
    pids = [
        int(actor["Pid"])
        for actor in actors().values()
        if actor["Name"].startswith(prefix) and actor["State"] == "ALIVE"
    ]
    assert len(pids) == 1, f"{deployment}: {pids}"
    return pids[0]


def open_session(http: httpx.Client) -> str:
    response = http.post("/v1/sessions", json={"principal": PRINCIPAL})
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session"]["id"]
    return session_id


def sleep_call(
    url: str, session_id: str, seconds: float, correlation_id: str, timeout: float = 60
) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=timeout) as client:
        return client.post(
            f"/v1/sessions/{session_id}/tools/test.sleep/invoke",
            json={"args": {"seconds": seconds}, "correlation_id": correlation_id},
        )


def wait_for(
    what: str, check: Callable[[], dict[str, Any] | None], within: float
) -> dict[str, Any]:
    """Poll `check` until it returns something (errors while a replica restarts count as
    nothing yet), for at most `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {within:g}s"
        time.sleep(0.1)


def running(http: httpx.Client, settings: Settings, session_id: str, correlation_id: str) -> str:
    """The id of the session's invocation under `correlation_id`, once it is recorded `running`
    (found through the lease index in Valkey: a read of the API by correlation id would be a
    replay, which could come first and become the invocation)."""
    host, port = settings.valkey_address
    leases = redis.Redis(host=host, port=port, db=settings.valkey_db, decode_responses=True)

    def check() -> dict[str, Any] | None:
        held = leases.zrange(f"{settings.invocation_store_key_prefix}:running", 0, -1)
        for invocation_id in map(str, held):
            response = http.get(f"/v1/invocations/{invocation_id}", timeout=5)
            if response.status_code != 200:
                continue
            invocation: dict[str, Any] = response.json()["invocation"]
            if (
                invocation["session_id"] == session_id
                and invocation.get("correlation_id") == correlation_id
                and invocation["status"] == "running"
            ):
                return invocation
        return None

    try:
        invocation_id: str = wait_for("invocation running", check, 30)["id"]
    finally:
        leases.close()
    return invocation_id


def ended(http: httpx.Client, invocation_id: str, within: float) -> dict[str, Any]:
    """The invocation once it is no longer `running`."""

    def check() -> dict[str, Any] | None:
        response = http.get(f"/v1/invocations/{invocation_id}", timeout=5)
        if response.status_code != 200:
            return None
        invocation: dict[str, Any] = response.json()["invocation"]
        return invocation if invocation["status"] != "running" else None

    return wait_for(f"invocation {invocation_id} ended", check, within)


def answered(future: Future[httpx.Response], within: float) -> httpx.Response:
    return future.result(timeout=within)


def test_killed_session_manager_leaves_its_invocation_failed_and_retryable(
    death_app: DeathApp, http: httpx.Client, background: ThreadPoolExecutor
) -> None:
    session_id = open_session(http)
    call = background.submit(sleep_call, death_app.url, session_id, 20, "sm-kill")
    invocation_id = running(http, death_app.settings, session_id, "sm-kill")
    # Past the first lease: the replica renews it, and the sweeper leaves a live one's alone.
    time.sleep(LEASE_SECONDS + 1)
    assert http.get(f"/v1/invocations/{invocation_id}").json()["invocation"]["status"] == "running"

    os.kill(replica_pid("SessionManager"), signal.SIGKILL)
    killed = time.monotonic()
    # The caller hears at once that the service was unavailable.
    response = answered(call, 30)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"

    invocation = ended(http, invocation_id, BOUND_SECONDS)
    elapsed = time.monotonic() - killed
    log.warning(f"SessionManager SIGKILL -> failed in {elapsed:.1f}s")
    assert invocation["status"] == "failed"
    assert invocation["error"]["code"] == "unavailable"
    assert invocation["error"]["retryable"] is True
    assert invocation["error"]["message"] == ABANDONED_MESSAGE
    assert invocation["completed_at"]
    # The successor serves new invocations.
    quick = sleep_call(death_app.url, session_id, 0, "sm-kill-after", timeout=30)
    assert quick.status_code == 200, quick.text
    assert quick.json()["invocation"]["status"] == "succeeded"


def test_killed_executor_fails_its_invocation_and_the_service_recovers(
    death_app: DeathApp, http: httpx.Client, background: ThreadPoolExecutor
) -> None:
    session_id = open_session(http)
    call = background.submit(sleep_call, death_app.url, session_id, 20, "ex-kill")
    invocation_id = running(http, death_app.settings, session_id, "ex-kill")
    time.sleep(1)  # the executor has the call and its child process runs

    os.kill(replica_pid("ToolExecutor"), signal.SIGKILL)
    killed = time.monotonic()
    response = answered(call, BOUND_SECONDS)
    elapsed = time.monotonic() - killed
    log.warning(f"ToolExecutor SIGKILL -> caller answered in {elapsed:.1f}s")
    assert response.status_code == 503, response.text
    answer = response.json()["invocation"]
    assert answer["status"] == "failed"
    assert answer["error"]["code"] == "unavailable"
    assert answer["error"]["retryable"] is True
    stored = ended(http, invocation_id, 5)
    assert stored["status"] == "failed"
    assert stored["error"]["code"] == "unavailable"

    # Serve replaces the executor replica; new invocations succeed again.
    def served() -> dict[str, Any] | None:
        quick = sleep_call(death_app.url, session_id, 0, f"ex-after-{time.monotonic()}", 10)
        return quick.json() if quick.status_code == 200 else None

    wait_for("a new invocation succeeds", served, 60)
    log.warning(
        f"ToolExecutor SIGKILL -> new invocations served after {time.monotonic() - killed:.1f}s"
    )
    assert replica_pid("ToolExecutor") > 0


def test_sigterm_to_the_session_manager_lets_its_invocation_finish(
    death_app: DeathApp, http: httpx.Client, background: ThreadPoolExecutor
) -> None:
    """A SIGTERM straight to the replica's process (not through Serve): Ray's worker finishes the
    calls it is running, takes no new ones, and never runs the deployment's shutdown hook; Serve
    replaces it once its health checks time out. The invocation in flight finishes."""
    session_id = open_session(http)
    call = background.submit(sleep_call, death_app.url, session_id, 3, "sm-term")
    invocation_id = running(http, death_app.settings, session_id, "sm-term")

    os.kill(replica_pid("SessionManager"), signal.SIGTERM)
    terminated = time.monotonic()
    response = answered(call, BOUND_SECONDS)
    assert response.status_code == 200, response.text
    assert response.json()["invocation"]["status"] == "succeeded"
    invocation = ended(http, invocation_id, BOUND_SECONDS)
    log.warning(
        f"SessionManager SIGTERM -> served again after {time.monotonic() - terminated:.1f}s"
    )
    assert invocation["status"] == "succeeded"


def test_graceful_stop_ends_what_outlasts_it(
    death_app: DeathApp, http: httpx.Client, background: ThreadPoolExecutor
) -> None:
    """Serve replaces the SessionManager replica (a redeploy): it waits for ongoing requests up to
    `graceful_shutdown_timeout_s`, then kills the replica. An invocation shorter than that
    finishes; a longer one ends `failed`."""
    session_id = open_session(http)
    long = background.submit(sleep_call, death_app.url, session_id, 30, "graceful-long")
    long_id = running(http, death_app.settings, session_id, "graceful-long")
    short = background.submit(sleep_call, death_app.url, session_id, 2, "graceful-short")
    time.sleep(0.3)

    stopping = time.monotonic()
    serve.run(compose(death_app.settings, manager_cpus=0.2), name=APP, route_prefix=f"/{APP}")
    log.warning(f"redeploy returned after {time.monotonic() - stopping:.1f}s")
    assert answered(short, 30).json()["invocation"]["status"] == "succeeded"
    response = answered(long, BOUND_SECONDS)
    assert response.status_code == 503, response.text
    invocation = ended(http, long_id, BOUND_SECONDS)
    log.warning(f"graceful stop -> long invocation failed in {time.monotonic() - stopping:.1f}s")
    assert invocation["status"] == "failed"
    assert invocation["error"]["code"] == "unavailable"
    assert invocation["error"]["retryable"] is True
    # By the sweeper after the lease ran out, or ("service temporarily unavailable") by the
    # replica itself when its executor call failed as Serve killed it: either way not `running`.


def test_a_caller_that_goes_away_leaves_nothing_running(
    death_app: DeathApp, http: httpx.Client
) -> None:
    """Serve cancels the whole chain of a request whose client went away, the executor call
    included: the invocation ends `failed` (unavailable, retryable) at once, not when its lease
    runs out."""
    session_id = open_session(http)
    with pytest.raises(httpx.ReadTimeout):
        sleep_call(death_app.url, session_id, 30, "gone", timeout=2)
    gone = time.monotonic()

    def stored() -> dict[str, Any] | None:
        # Recorded before the client gave up: a replay answers that record.
        replay = sleep_call(death_app.url, session_id, 0, "gone", timeout=5)
        invocation: dict[str, Any] = replay.json()["invocation"]
        return invocation if invocation["status"] != "running" else None

    invocation = wait_for("the abandoned call ended", stored, 5)
    log.warning(f"caller gone -> failed in {time.monotonic() - gone:.1f}s")
    assert invocation["status"] == "failed"
    assert invocation["error"]["code"] == "unavailable"
    assert invocation["error"]["retryable"] is True
    assert invocation["error"]["message"] == "test.sleep was cancelled before it ended; retry"
