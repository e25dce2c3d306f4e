"""The pod janitor of the kubernetes backend (contract §7.4): reconciles runner pods
(`app=workspace-session`) and container-run pods (`app=workspace-container-run`) with the
session records, so that pods outlive neither their use nor their session.

A pod is deleted when
- it has ended (phase Succeeded, Failed or Unknown) longer ago than the terminal TTL of its kind
  → `terminal_pod_ttl_expired`;
- its session record is missing and the pod is older than the grace period → `session_not_found`
  (a runner pod at least as old as the readiness timeout plus a margin, too: its session is
  stored only once it is Ready, so a younger one may still be in its creator's hands);
- its session has expired → the session record and the pod are deleted, `session_expired`.
Pods already being deleted are skipped. Every deletion is logged with its reason and counted.

`decide` is the whole policy, a pure function of the pod, its session and the time; `PodJanitor`
does the API calls around it. One replica at a time sweeps (a lease, see `wiring`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from serve_app.adapters.kubernetes_workspace import (
    CONTAINER_RUN_APP,
    REQUEST_TIMEOUT_SECONDS,
    SESSION_APP,
    SESSION_ID_ANNOTATION,
)
from serve_app.config import Settings
from serve_app.domain.models import Session, utcnow
from serve_app.domain.ports import Lease, SessionStore

log = logging.getLogger(__name__)
T = TypeVar("T")

TERMINAL_POD_TTL_EXPIRED = "terminal_pod_ttl_expired"
SESSION_NOT_FOUND = "session_not_found"
SESSION_EXPIRED = "session_expired"
REASONS = (TERMINAL_POD_TTL_EXPIRED, SESSION_NOT_FOUND, SESSION_EXPIRED)
TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Unknown"})
# Beyond the readiness timeout, how long a runner pod may still be in the hands of its creator
# (which stores the session once the pod is Ready, or deletes the pod when the wait fails).
CREATION_MARGIN_SECONDS = 30.0
LIST_PAGE = 500
DELETE_GRACE_SECONDS = 1
SESSION_LABELS = {SESSION_APP: "workspace_id", CONTAINER_RUN_APP: "workspace_session_id"}

PodKind = Literal["session", "container"]
KINDS: tuple[tuple[str, PodKind], ...] = (
    (SESSION_APP, "session"),
    (CONTAINER_RUN_APP, "container"),
)


class PodDeletionCounter(Protocol):
    """Counts the janitor's deletions by reason (the metric
    `workspace_k8s_pod_deletions_total{reason}`)."""

    async def pod_deleted(self, reason: str) -> None: ...


@dataclass(frozen=True)
class PodInfo:
    """What the janitor needs of a pod."""

    namespace: str
    name: str
    kind: PodKind
    session_id: str
    """The exact id from the annotation, else the (sanitised) label value; empty if neither."""
    phase: str = "Pending"
    created_at: datetime | None = None
    ended_at: datetime | None = None
    """When its last container terminated (terminal pods), if known."""
    ready: bool = False
    deleting: bool = False


@dataclass(frozen=True)
class JanitorPolicy:
    session_terminal_ttl: float = 300
    container_terminal_ttl: float = 300
    missing_session_grace: float = 120
    ready_timeout: float = 120

    @classmethod
    def of(cls, settings: Settings) -> JanitorPolicy:
        return cls(
            session_terminal_ttl=settings.k8s_session_pod_terminal_ttl_seconds,
            container_terminal_ttl=settings.k8s_container_pod_terminal_ttl_seconds,
            missing_session_grace=settings.k8s_missing_session_grace_seconds,
            ready_timeout=settings.k8s_ready_timeout_seconds,
        )


def _age(since: datetime | None, now: datetime) -> float:
    return (now - since).total_seconds() if since is not None else 0.0


def decide(
    pod: PodInfo, session: Session | None, now: datetime, policy: JanitorPolicy
) -> str | None:
    """Why the pod should go (one of `REASONS`), or None to keep it."""
    if pod.deleting:
        return None
    age = _age(pod.created_at, now)
    if pod.phase in TERMINAL_PHASES:
        ttl = (
            policy.session_terminal_ttl if pod.kind == "session" else policy.container_terminal_ttl
        )
        if _age(pod.ended_at or pod.created_at, now) > ttl:
            return TERMINAL_POD_TTL_EXPIRED
    if session is None:
        grace = policy.missing_session_grace
        if pod.kind == "session":
            # Its session is stored only once the pod is Ready: until its creator has given up
            # waiting, a missing session may be one not stored yet.
            grace = max(grace, policy.ready_timeout + CREATION_MARGIN_SECONDS)
        if pod.created_at is None or age <= grace:
            return None
        return SESSION_NOT_FOUND
    if session.expired(now):
        return SESSION_EXPIRED
    return None


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    return obj


def pod_info(pod: Any, kind: PodKind) -> PodInfo:
    """A pod of the client (`V1Pod`) as the janitor sees it."""
    metadata = _get(pod, "metadata")
    labels = _get(metadata, "labels") or {}
    annotations = _get(metadata, "annotations") or {}
    app = SESSION_APP if kind == "session" else CONTAINER_RUN_APP
    session_id = annotations.get(SESSION_ID_ANNOTATION) or labels.get(SESSION_LABELS[app], "")
    status = _get(pod, "status")
    ended: list[datetime] = []
    for container in _get(status, "container_statuses") or []:
        finished = _get(container, "state", "terminated", "finished_at")
        if isinstance(finished, datetime):
            ended.append(finished)
    ready = any(
        _get(condition, "type") == "Ready" and _get(condition, "status") == "True"
        for condition in _get(status, "conditions") or []
    )
    created = _get(metadata, "creation_timestamp")
    return PodInfo(
        namespace=str(_get(metadata, "namespace") or ""),
        name=str(_get(metadata, "name") or ""),
        kind=kind,
        session_id=str(session_id or ""),
        phase=str(_get(status, "phase") or "Pending"),
        created_at=created if isinstance(created, datetime) else None,
        ended_at=max(ended) if ended else None,
        ready=ready,
        deleting=_get(metadata, "deletion_timestamp") is not None,
    )


@dataclass(frozen=True)
class Deletion:
    namespace: str
    name: str
    reason: str
    session_id: str


class PodJanitor:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        sessions: SessionStore,
        policy: JanitorPolicy,
        counters: Sequence[PodDeletionCounter] = (),
        clock: Callable[[], datetime] = utcnow,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._sessions = sessions
        self._policy = policy
        self._counters = list(counters)
        self._clock = clock
        self._timeout = request_timeout

    @classmethod
    def from_settings(
        cls, api: client.ApiClient, settings: Settings, sessions: SessionStore, **kwargs: Any
    ) -> PodJanitor:
        return cls(
            api,
            namespace=settings.k8s_namespace,
            sessions=sessions,
            policy=JanitorPolicy.of(settings),
            **kwargs,
        )

    async def sweep(self) -> list[Deletion]:
        """One pass over both kinds of pods; returns what was deleted. A pod that cannot be
        handled is logged and left for the next pass."""
        deleted: list[Deletion] = []
        sessions: dict[str, Session | None] = {}
        for app, kind in KINDS:
            for pod in await self._list(app):
                info = pod_info(pod, kind)
                try:
                    deletion = await self._reconcile(info, sessions)
                except Exception:
                    log.exception(
                        "pod janitor could not handle pod %s/%s", info.namespace, info.name
                    )
                    continue
                if deletion is not None:
                    deleted.append(deletion)
        return deleted

    async def _reconcile(
        self, info: PodInfo, sessions: dict[str, Session | None]
    ) -> Deletion | None:
        if info.deleting or not info.name:
            return None
        session: Session | None = None
        if info.session_id:
            if info.session_id not in sessions:
                sessions[info.session_id] = await self._sessions.get(info.session_id)
            session = sessions[info.session_id]
        reason = decide(info, session, self._clock(), self._policy)
        if reason is None:
            return None
        if reason == SESSION_EXPIRED and session is not None:
            await self._sessions.delete(session.id)
        if not await self._delete(info):
            return None
        log.info(
            "pod janitor deleted pod %s/%s (%s): %s",
            info.namespace,
            info.name,
            info.kind,
            reason,
            extra={
                "audit": {
                    "event": "k8s.pod_deleted",
                    "pod": info.name,
                    "namespace": info.namespace,
                    "reason": reason,
                    "workspace_session_id": info.session_id,
                }
            },
        )
        for counter in self._counters:
            try:
                await counter.pod_deleted(reason)
            except Exception:
                log.exception("could not count a pod deletion")
        return Deletion(info.namespace, info.name, reason, info.session_id)

    async def _list(self, app: str) -> list[Any]:
        pods: list[Any] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": f"app={app}", "limit": LIST_PAGE}
            if token:
                kwargs["_continue"] = token
            page = await self._api(self._core.list_namespaced_pod, self._namespace, **kwargs)
            pods.extend(page.items or [])
            token = _get(page, "metadata", "_continue")
            if not token:
                return pods

    async def _delete(self, info: PodInfo) -> bool:
        try:
            await self._api(
                self._core.delete_namespaced_pod,
                info.name,
                info.namespace or self._namespace,
                grace_period_seconds=DELETE_GRACE_SECONDS,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _api(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("_request_timeout", self._timeout)
        return await asyncio.wait_for(
            asyncio.to_thread(call, *args, **kwargs), timeout=self._timeout * 2
        )


async def run_pod_janitor(janitor: PodJanitor, lease: Lease, interval_seconds: float) -> None:
    """Sweep at once and then every `interval_seconds`, while this process holds the janitor's
    lease (one sweeping replica at a time), until cancelled."""
    while True:
        try:
            if await lease.acquire(interval_seconds * 2):
                await janitor.sweep()
        except (ApiException, HTTPError, OSError, TimeoutError) as exc:
            log.warning("pod janitor sweep failed: %s", exc)
        except Exception:
            log.exception("pod janitor sweep failed")
        await asyncio.sleep(interval_seconds)
