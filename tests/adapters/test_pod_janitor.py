"""The pod janitor (contract §7.4): its decisions as a pure function of a pod, its session and a
fixed clock; one sweeping replica at a time (the Valkey lease); and — against the Kubernetes
emulator of `tests/support/kube.py`, through the official client — what a sweep deletes, logs and
counts."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from serve_app.adapters import valkey
from serve_app.adapters.kubernetes_workspace import (
    SESSION_ID_ANNOTATION,
    KubernetesWorkspaceManager,
)
from serve_app.adapters.memory import MemorySessionStore
from serve_app.adapters.pod_janitor import (
    CREATION_MARGIN_SECONDS,
    SESSION_EXPIRED,
    SESSION_NOT_FOUND,
    TERMINAL_POD_TTL_EXPIRED,
    JanitorPolicy,
    PodInfo,
    PodJanitor,
    PodKind,
    decide,
    pod_info,
    run_pod_janitor,
)
from serve_app.adapters.telemetry import MemoryMetrics, ValkeyMetrics
from serve_app.api.prometheus import render
from serve_app.config import Settings
from serve_app.domain.models import Principal, Runtime, Session
from serve_app.domain.observability import MetricsSnapshot
from serve_app.wiring import build_stores, start_pod_janitor

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
POLICY = JanitorPolicy(
    session_terminal_ttl=300,
    container_terminal_ttl=60,
    missing_session_grace=120,
    ready_timeout=120,
)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def pod(
    kind: PodKind = "session",
    *,
    age: float = 1000,
    phase: str = "Running",
    ready: bool = True,
    ended: float | None = None,
    deleting: bool = False,
    created: bool = True,
) -> PodInfo:
    return PodInfo(
        namespace="fleet",
        name="ws-s1",
        kind=kind,
        session_id="s1",
        phase=phase,
        created_at=ago(age) if created else None,
        ended_at=ago(ended) if ended is not None else None,
        ready=ready,
        deleting=deleting,
    )


def session(expires_in: float = 600) -> Session:
    return Session(
        id="s1",
        workspace_path="/workspace/repo",
        runtime=Runtime(kind="kubernetes", namespace="fleet", pod_name="ws-s1"),
        allowed_paths=["."],
        principal=Principal(tenant_id="t", actor_id="a", roles=[]),
        created_at=ago(3600),
        expires_at=NOW + timedelta(seconds=expires_in),
    )


# --- decisions -----------------------------------------------------------------------------------


def test_a_live_pod_of_a_live_session_stays() -> None:
    assert decide(pod(), session(), NOW, POLICY) is None


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Unknown"])
def test_terminal_pods_go_after_their_ttl(phase: str) -> None:
    assert decide(pod(phase=phase, age=301), session(), NOW, POLICY) == TERMINAL_POD_TTL_EXPIRED
    assert decide(pod(phase=phase, age=299), session(), NOW, POLICY) is None


def test_the_terminal_ttl_counts_from_the_end_when_known() -> None:
    old_but_just_ended = pod(phase="Failed", age=10_000, ended=30)
    assert decide(old_but_just_ended, session(), NOW, POLICY) is None
    assert decide(pod(phase="Failed", age=10_000, ended=301), session(), NOW, POLICY) == (
        TERMINAL_POD_TTL_EXPIRED
    )


def test_container_run_pods_have_their_own_terminal_ttl() -> None:
    ended = pod("container", phase="Succeeded", age=61)
    assert decide(ended, session(), NOW, POLICY) == TERMINAL_POD_TTL_EXPIRED
    assert decide(pod("container", phase="Succeeded", age=59), session(), NOW, POLICY) is None


def test_running_pods_are_not_terminal() -> None:
    assert decide(pod(phase="Running", age=10_000), session(), NOW, POLICY) is None


def test_pods_without_a_session_go_after_the_grace() -> None:
    assert decide(pod("container", age=121), None, NOW, POLICY) == SESSION_NOT_FOUND
    assert decide(pod("container", age=119), None, NOW, POLICY) is None


def test_a_runner_pod_is_left_to_its_creator_until_the_readiness_timeout_has_passed() -> None:
    """Its session is stored only once it is Ready (and its creator saw that): until the
    readiness timeout plus a margin has passed, a missing session may be one not stored yet,
    Ready or not."""
    limit = POLICY.ready_timeout + CREATION_MARGIN_SECONDS
    for ready, phase in ((False, "Pending"), (True, "Running")):
        assert decide(pod(phase=phase, ready=ready, age=limit - 1), None, NOW, POLICY) is None
        assert decide(pod(phase=phase, ready=ready, age=limit + 1), None, NOW, POLICY) == (
            SESSION_NOT_FOUND
        )
    longer = JanitorPolicy(missing_session_grace=600, ready_timeout=120)
    assert decide(pod(age=limit + 1), None, NOW, longer) is None
    assert decide(pod(age=601), None, NOW, longer) == SESSION_NOT_FOUND


def test_a_pod_without_a_creation_time_is_never_missing_its_session() -> None:
    assert decide(pod(created=False), None, NOW, POLICY) is None


@pytest.mark.parametrize("kind", ["session", "container"])
def test_pods_of_expired_sessions_go(kind: PodKind) -> None:
    assert decide(pod(kind, age=5), session(expires_in=-1), NOW, POLICY) == SESSION_EXPIRED


def test_pods_being_deleted_are_skipped() -> None:
    gone = pod(phase="Failed", age=10_000, deleting=True)
    assert decide(gone, None, NOW, POLICY) is None
    assert decide(gone, session(expires_in=-1), NOW, POLICY) is None


def test_terminal_comes_before_the_session_rules() -> None:
    assert decide(pod(phase="Failed", age=400), None, NOW, POLICY) == TERMINAL_POD_TTL_EXPIRED


# --- what the janitor reads of a pod -----------------------------------------------------------


def v1_pod(
    name: str,
    *,
    app: str = "workspace-session",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    phase: str = "Running",
    finished: datetime | None = None,
) -> client.V1Pod:
    statuses = []
    if finished is not None:
        statuses.append(
            client.V1ContainerStatus(
                name="runner", image="r", image_id="", ready=False, restart_count=0,
                state=client.V1ContainerState(
                    terminated=client.V1ContainerStateTerminated(exit_code=0, finished_at=finished)
                ),
            )
        )  # fmt: skip
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace="fleet",
            labels={"app": app, **(labels or {})},
            annotations=annotations,
            creation_timestamp=ago(500),
        ),
        status=client.V1PodStatus(
            phase=phase,
            conditions=[client.V1PodCondition(type="Ready", status="True")],
            container_statuses=statuses,
        ),
    )


def test_pod_info_prefers_the_exact_session_id_of_the_annotation() -> None:
    annotated = v1_pod(
        "ws-sess-a",
        labels={"workspace_id": "sess-a"},
        annotations={SESSION_ID_ANNOTATION: "Sess-A"},
    )
    info = pod_info(annotated, "session")
    assert info.session_id == "Sess-A"
    assert info.created_at == ago(500)
    assert info.ready and not info.deleting
    assert pod_info(v1_pod("ws-b", labels={"workspace_id": "b"}), "session").session_id == "b"
    container = v1_pod(
        "ws-ctr-x",
        app="workspace-container-run",
        labels={"workspace_session_id": "c"},
        phase="Succeeded",
        finished=ago(42),
    )
    info = pod_info(container, "container")
    assert (info.session_id, info.phase, info.ended_at) == ("c", "Succeeded", ago(42))
    assert pod_info(v1_pod("ws-none"), "session").session_id == ""


# --- one sweeping replica ----------------------------------------------------------------------


class CountingJanitor:
    def __init__(self) -> None:
        self.sweeps = 0

    async def sweep(self) -> list[Any]:
        self.sweeps += 1
        return []


async def until(condition: Any, seconds: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_one_replica_at_a_time_sweeps(valkey_address: str) -> None:
    """Two replicas' janitors share the Valkey lease (`<prefix>:pod-janitor-lease`): only the
    holder sweeps; when it stops, the other takes over once the lease has lapsed."""
    host, _, port = valkey_address.rpartition(":")
    redis_client = valkey.connect(host, int(port), db=0, password="", timeout_seconds=2)
    key = f"t-{uuid.uuid4().hex[:8]}:session:pod-janitor-lease"
    first, second = CountingJanitor(), CountingJanitor()
    interval = 0.25
    leases = [valkey.ValkeyLease(redis_client, key, holder) for holder in ("r-1", "r-2")]
    tasks = [asyncio.create_task(run_pod_janitor(first, leases[0], interval))]  # type: ignore[arg-type]
    try:
        await until(lambda: first.sweeps >= 1)  # at once
        tasks.append(asyncio.create_task(run_pod_janitor(second, leases[1], interval)))  # type: ignore[arg-type]
        await until(lambda: first.sweeps >= 4)  # then every interval
        assert second.sweeps == 0
        tasks[0].cancel()
        await until(lambda: second.sweeps >= 1)  # once the lease (2 intervals) has lapsed
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis_client.aclose()


async def test_a_failing_sweep_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        calls = 0

        async def sweep(self) -> list[Any]:
            self.calls += 1
            raise OSError("connection refused")

    class Always:
        async def acquire(self, ttl_seconds: float) -> bool:
            return True

    janitor = Failing()
    task = asyncio.create_task(run_pod_janitor(janitor, Always(), 0.05))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="serve_app.adapters.pod_janitor"):
        await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert janitor.calls >= 2
    assert "pod janitor sweep failed: connection refused" in caplog.text


# --- the metric ----------------------------------------------------------------------------------


async def test_deletions_are_counted_in_the_services_metrics(valkey_address: str) -> None:
    """`workspace_k8s_pod_deletions_total{reason}` on `/metrics`, from memory or from Valkey (the
    whole application's count)."""
    host, _, port = valkey_address.rpartition(":")
    redis_client = valkey.connect(host, int(port), db=0, password="", timeout_seconds=2)
    try:
        recorders = [
            MemoryMetrics(),
            ValkeyMetrics(redis_client, f"t-{uuid.uuid4().hex[:8]}:metrics"),
        ]
        for recorder in recorders:
            await recorder.pod_deleted(SESSION_EXPIRED)
            await recorder.pod_deleted(SESSION_EXPIRED)
            await recorder.pod_deleted(TERMINAL_POD_TTL_EXPIRED)
            snapshot = await recorder.snapshot()
            assert snapshot.pod_deletions == {SESSION_EXPIRED: 2, TERMINAL_POD_TTL_EXPIRED: 1}
            text = render(snapshot, "1.0").decode()
            assert 'workspace_k8s_pod_deletions_total{reason="session_expired"} 2.0' in text
            assert 'workspace_k8s_pod_deletions_total{reason="terminal_pod_ttl_expired"} 1.0' in (
                text
            )
    finally:
        await redis_client.aclose()


def test_the_family_is_always_on_metrics() -> None:
    text = render(MetricsSnapshot(), "1.0").decode()
    assert "# TYPE workspace_k8s_pod_deletions_total counter" in text


# --- against the emulator ------------------------------------------------------------------------
#
# The emulator (tests/support/kube) stores pods and runs them as sandboxes; a test backdates a
# pod's creationTimestamp or sets its phase directly (`Cluster.edit`). It does not model graceful
# deletion (a deleted pod is gone at once: no deletionTimestamp is ever seen), nor RBAC.

NS = "fleet"
LONG_AGO = "2020-01-01T00:00:00Z"


def janitor_settings() -> Settings:
    return Settings(
        workspace_backend="kubernetes",
        k8s_namespace=NS,
        k8s_ready_timeout_seconds=20,
        k8s_session_pod_terminal_ttl_seconds=300,
        k8s_container_pod_terminal_ttl_seconds=300,
        k8s_missing_session_grace_seconds=120,
    )


def stored_session(session_id: str, pod_name: str, *, expires_in: float) -> Session:
    now = datetime.now(UTC)
    return Session(
        id=session_id,
        workspace_path="/workspace/repo",
        runtime=Runtime(kind="kubernetes", namespace=NS, pod_name=pod_name),
        allowed_paths=["."],
        principal=Principal(tenant_id="t", actor_id="a", roles=[]),
        created_at=now - timedelta(hours=2),
        expires_at=now + timedelta(seconds=expires_in),
    )


def container_run_pod(name: str, session_id: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"app": "workspace-container-run", "workspace_session_id": session_id},
        },
        "spec": {"restartPolicy": "Never", "containers": [{"name": "task", "image": "busybox"}]},
    }


async def test_a_sweep_deletes_each_kind_of_leftover_and_nothing_else(
    kube_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Live pods stay; an ended pod past its TTL, a pod whose session is gone past the grace, and
    the pod and record of an expired session go — each logged and counted with its reason."""
    cluster = kube_cluster
    settings = janitor_settings()
    manager = KubernetesWorkspaceManager.from_settings(
        cluster.api_client(), settings, poll_seconds=0.05
    )
    principal = Principal(tenant_id="t", actor_id="a", roles=[])
    for session_id in ("live", "Orphan", "young", "expired", "ended"):
        await manager.create(
            session_id, principal, source_repo_path=None, repo_url=None, repo_ref=None
        )
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod(NS, container_run_pod("ws-ctr-live-a1b2c3", "live"))
    core.create_namespaced_pod(NS, container_run_pod("ws-ctr-gone-d4e5f6", "gone"))
    core.create_namespaced_pod(NS, container_run_pod("ws-ctr-done-0a0b0c", "live"))
    sessions = MemorySessionStore()
    await sessions.put(stored_session("live", "ws-live", expires_in=600))
    await sessions.put(stored_session("expired", "ws-expired", expires_in=-5))
    await sessions.put(stored_session("ended", "ws-ended", expires_in=600))
    backdate = {"metadata": {"creationTimestamp": LONG_AGO}}
    for name in ("ws-orphan", "ws-ended", "ws-ctr-gone-d4e5f6", "ws-ctr-done-0a0b0c", "ws-live"):
        cluster.edit("v1/pods", NS, name, backdate)
    for name in ("ws-ended", "ws-ctr-done-0a0b0c"):
        cluster.edit("v1/pods", NS, name, {"status": {"phase": "Failed"}})
    metrics = MemoryMetrics()
    janitor = PodJanitor.from_settings(cluster.api_client(), settings, sessions, counters=[metrics])
    with caplog.at_level(logging.INFO, logger="serve_app.adapters.pod_janitor"):
        deleted = await janitor.sweep()
    assert {(d.name, d.reason) for d in deleted} == {
        ("ws-orphan", SESSION_NOT_FOUND),
        ("ws-expired", SESSION_EXPIRED),
        ("ws-ended", TERMINAL_POD_TTL_EXPIRED),
        ("ws-ctr-gone-d4e5f6", SESSION_NOT_FOUND),
        ("ws-ctr-done-0a0b0c", TERMINAL_POD_TTL_EXPIRED),
    }
    # The exact session id (annotation), not the lower-cased label, was looked up.
    assert {d.session_id for d in deleted if d.name == "ws-orphan"} == {"Orphan"}
    remaining = sorted(pod["metadata"]["name"] for pod in cluster.pods(NS))
    assert remaining == ["ws-ctr-live-a1b2c3", "ws-live", "ws-young"]
    assert await sessions.get("expired") is None  # the record went with its pod
    assert await sessions.get("ended") is not None  # an ended pod does not end its session
    assert (await metrics.snapshot()).pod_deletions == {
        SESSION_NOT_FOUND: 2,
        SESSION_EXPIRED: 1,
        TERMINAL_POD_TTL_EXPIRED: 2,
    }
    lines = [r.getMessage() for r in caplog.records if r.name == "serve_app.adapters.pod_janitor"]
    assert f"pod janitor deleted pod {NS}/ws-expired (session): session_expired" in lines
    assert f"pod janitor deleted pod {NS}/ws-ctr-gone-d4e5f6 (container): session_not_found" in (
        lines
    )
    assert len(lines) == 5
    assert await janitor.sweep() == []  # nothing more to do


async def test_the_janitor_task_sweeps_at_start_and_counts(kube_cluster: Any) -> None:
    """`start_pod_janitor` (what a SessionManager replica runs): a sweep at once, its deletions
    in the stores' metrics (hence `/metrics`)."""
    cluster = kube_cluster
    settings = janitor_settings().model_copy(update={"k8s_pod_janitor_interval_seconds": 30})
    stores = build_stores(settings)
    manager = KubernetesWorkspaceManager.from_settings(
        cluster.api_client(), settings, poll_seconds=0.05
    )
    await manager.create(
        "forgotten",
        Principal(tenant_id="t", actor_id="a", roles=[]),
        source_repo_path=None,
        repo_url=None,
        repo_ref=None,
    )
    cluster.edit("v1/pods", NS, "ws-forgotten", {"metadata": {"creationTimestamp": LONG_AGO}})
    task = start_pod_janitor(settings, manager, stores)
    assert task is not None
    try:
        for _ in range(100):
            if not cluster.pods(NS):
                break
            await asyncio.sleep(0.05)
        assert cluster.pods(NS) == []
        snapshot = await stores.metrics.snapshot()
        assert snapshot.pod_deletions == {SESSION_NOT_FOUND: 1}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    disabled = settings.model_copy(update={"k8s_pod_janitor_enabled": False})
    assert start_pod_janitor(disabled, manager, stores) is None
