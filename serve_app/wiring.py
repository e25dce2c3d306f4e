"""Assembling the domain from settings: which adapters back which port. No Ray here, so the same
assembly serves the Serve deployments, the in-process app and the tests."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from serve_app.adapters import valkey
from serve_app.adapters.artifacts import LocalArtifactStore
from serve_app.adapters.local_workspace import LocalWorkspaceManager
from serve_app.adapters.memory import MemoryInvocationStore, MemorySessionStore, ProcessLease
from serve_app.adapters.quotas import MemoryQuotaStore, ValkeyQuotaStore
from serve_app.adapters.repo_sources import RepoSources
from serve_app.adapters.telemetry import (
    LogAudit,
    MemoryAudit,
    MemoryMetrics,
    ValkeyAudit,
    ValkeyMetrics,
)
from serve_app.config import Settings
from serve_app.domain.catalog import Catalog
from serve_app.domain.models import utcnow
from serve_app.domain.observability import AuditLog, MetricsRecorder, Observer
from serve_app.domain.ports import (
    Executor,
    InvocationStore,
    Lease,
    QuotaStore,
    SessionStore,
    WorkspaceManager,
)
from serve_app.domain.quotas import QuotaLimits
from serve_app.domain.service import SessionService
from serve_app.execution.executor import ExecutionService
from serve_app.runtime.sandbox import (
    ProcessCgroups,
    Sandbox,
    SandboxLimits,
)
from serve_app.tools import build_registry
from serve_app.tools.family import KUBERNETES_API, Toolbox

if TYPE_CHECKING:
    from serve_app.adapters.kubernetes_workspace import KubernetesWorkspaceManager
    from serve_app.adapters.pod_janitor import PodDeletionCounter

log = logging.getLogger(__name__)


@dataclass
class Stores:
    sessions: SessionStore
    invocations: InvocationStore
    sweeper_lease: Lease
    quotas: QuotaStore
    metrics: MetricsRecorder
    audit: AuditLog
    client: aioredis.Redis | None = None
    address: str = ""
    janitor_lease: Lease = field(default_factory=ProcessLease)
    """One pod janitor (kubernetes backend) across all replicas."""

    @property
    def shared(self) -> bool:
        """True when every replica sees the same state (both stores in Valkey)."""
        return not isinstance(self.sessions, MemorySessionStore) and not isinstance(
            self.invocations, MemoryInvocationStore
        )

    async def check(self) -> None:
        if self.client is not None:
            await valkey.ping(self.client, self.address)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def build_stores(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> Stores:
    client: aioredis.Redis | None = None
    address = ""
    if settings.uses_valkey:
        host, port = settings.valkey_address
        address = f"{host}:{port}"
        client = valkey.connect(
            host,
            port,
            db=settings.valkey_db,
            password=settings.valkey_password.get_secret_value(),
            timeout_seconds=settings.valkey_timeout_seconds,
        )
    sessions: SessionStore
    invocations: InvocationStore
    if settings.session_store_backend == "valkey" and client is not None:
        sessions = valkey.ValkeySessionStore(client, settings.session_store_key_prefix)
    else:
        sessions = MemorySessionStore()
    if settings.invocation_store_backend == "valkey" and client is not None:
        invocations = valkey.ValkeyInvocationStore(
            client,
            settings.invocation_store_key_prefix,
            ttl_seconds=settings.invocation_store_ttl_seconds,
            inline_max_bytes=settings.inline_output_max_bytes,
        )
    else:
        invocations = MemoryInvocationStore(
            clock=clock,
            ttl_seconds=settings.invocation_store_ttl_seconds,
            max_records=settings.invocation_store_max_records,
            max_bytes=settings.invocation_store_max_bytes,
            inline_max_bytes=settings.inline_output_max_bytes,
        )
    lease: Lease = ProcessLease()
    janitor_lease: Lease = ProcessLease()
    quotas: QuotaStore = MemoryQuotaStore()
    if settings.session_store_backend == "valkey" and client is not None:
        holder = secrets.token_hex(8)
        prefix = settings.session_store_key_prefix
        lease = valkey.ValkeyLease(client, f"{prefix}:sweeper-lease", holder)
        janitor_lease = valkey.ValkeyLease(client, f"{prefix}:pod-janitor-lease", holder)
        quotas = ValkeyQuotaStore(client, settings.quota_key_prefix)
    metrics: MetricsRecorder = MemoryMetrics()
    audit: AuditLog = MemoryAudit(per_session=settings.audit_max_records_per_session)
    if settings.invocation_store_backend == "valkey" and client is not None:
        metrics = ValkeyMetrics(client, settings.metrics_key_prefix)
        audit = ValkeyAudit(
            client,
            settings.audit_key_prefix,
            max_length=settings.audit_max_records_per_session,
            ttl_seconds=settings.invocation_store_ttl_seconds,
        )
    return Stores(
        sessions, invocations, lease, quotas, metrics, audit, client, address, janitor_lease
    )


def quota_limits(settings: Settings) -> QuotaLimits:
    return QuotaLimits(
        rate_per_minute=settings.rate_limit_per_minute,
        rate_per_minute_per_principal=settings.rate_limit_per_minute_per_principal,
        max_concurrency_per_session=settings.max_concurrency_per_session,
        max_output_bytes=settings.max_output_bytes_per_invocation,
        max_artifacts=settings.max_artifacts_per_invocation,
        max_artifact_bytes=settings.max_artifact_bytes_per_invocation,
        max_sessions_per_tenant=settings.max_sessions_per_tenant,
    )


MIB = 1024 * 1024


def build_sandbox(settings: Settings, *, check: bool = True) -> Sandbox:
    """The sandbox every tool process of this process runs in; checked once by starting one, so
    that a missing or broken bubblewrap stops the service at start-up, not at the first call."""
    sandbox = Sandbox(
        mode=settings.sandbox,
        limits=SandboxLimits(
            memory_bytes=settings.sandbox_max_memory_mb * MIB,
            processes=settings.sandbox_max_processes,
            file_size_bytes=settings.sandbox_max_file_size_mb * MIB,
            cpu_seconds=settings.sandbox_max_cpu_seconds,
            open_files=settings.sandbox_max_open_files,
        ),
        toolchain_dirs=settings.sandbox_toolchain_dirs or None,
        git_protocols=tuple(settings.git_allowed_schemes),
    )
    if sandbox.enabled and os.geteuid() == 0 and settings.sandbox_max_processes > 0:
        # Root is exempt from RLIMIT_NPROC: a pids cgroup per sandbox bounds its processes.
        sandbox.cgroups = ProcessCgroups.discover(settings.sandbox_max_processes)
    if not sandbox.enabled:
        log.warning(
            "WORKSPACE_SANDBOX=none: tool processes run unsandboxed as the service's own user; "
            "they can read other sessions' workspaces and the service's secrets"
        )
    elif check:
        sandbox.check()
    return sandbox


def build_executor(settings: Settings, sandbox: Sandbox | None = None) -> ExecutionService:
    """The executor, with the tools made for this replica (their clients made on first use).
    The replica's Kubernetes API client, which runs the tools of runner-pod sessions, is one of
    those clients (the k8s.* tools share it), made on the first such call."""
    toolbox = Toolbox(settings=settings)

    def kube() -> Any:
        def make() -> Any:
            from serve_app.runtime.kube_api import api_client

            return api_client(settings)

        return toolbox.clients.get(KUBERNETES_API, make)

    return ExecutionService(
        build_registry(settings.extra_tool_families, toolbox=toolbox),
        sandbox=sandbox or build_sandbox(settings),
        blocking_threads=settings.executor_threads,
        clients=toolbox.clients,
        kube=kube,
    )


def build_catalog(settings: Settings) -> Catalog:
    """The capabilities, read from families made with a toolbox that makes no client."""
    toolbox = Toolbox.for_catalog(settings)
    return Catalog(build_registry(settings.extra_tool_families, toolbox=toolbox).capabilities())


def build_session_service(
    settings: Settings,
    executor: Executor,
    *,
    clock: Callable[[], datetime] = utcnow,
    stores: Stores | None = None,
    observers: Sequence[Observer] = (),
    sandbox: Sandbox | None = None,
    workspaces: WorkspaceManager | None = None,
) -> SessionService:
    """The session manager's domain; `workspaces` defaults to the backend the settings name
    (`build_workspaces`)."""
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    stores = stores or build_stores(settings, clock=clock)
    workspaces = workspaces or build_workspaces(settings, sandbox=sandbox)
    return SessionService(
        sessions=stores.sessions,
        invocations=stores.invocations,
        artifacts=LocalArtifactStore(
            settings.artifact_root, retention_seconds=artifact_retention_seconds(settings)
        ),
        workspaces=workspaces,
        catalog=build_catalog(settings),
        executor=executor,
        quotas=stores.quotas,
        limits=quota_limits(settings),
        observers=(stores.metrics, stores.audit, LogAudit(), *observers),
        metrics=stores.metrics,
        audit=stores.audit,
        default_ttl_seconds=settings.session_default_ttl_seconds,
        max_ttl_seconds=settings.session_max_ttl_seconds,
        create_timeout_seconds=create_timeout_seconds(settings),
        invocation_lease_seconds=settings.invocation_lease_seconds,
        clock=clock,
    )


def build_workspaces(
    settings: Settings, *, sandbox: Sandbox | None = None, kube: Any | None = None
) -> WorkspaceManager:
    """The backend `WORKSPACE_BACKEND` names: local directories, or a runner pod per session
    through `kube` (a `kubernetes.client.ApiClient`; made from the settings when not given)."""
    if settings.workspace_backend == "kubernetes":
        # Imported here: the Kubernetes client costs a local-only process half a second.
        from serve_app.adapters.kubernetes_workspace import KubernetesWorkspaceManager
        from serve_app.runtime.kube_api import api_client

        return KubernetesWorkspaceManager.from_settings(kube or api_client(settings), settings)
    settings.workspace_root.mkdir(parents=True, exist_ok=True)
    return LocalWorkspaceManager(
        settings.workspace_root,
        source_repo_roots=settings.source_repo_roots,
        clone_timeout_seconds=settings.clone_timeout_seconds,
        sandbox=sandbox or build_sandbox(settings),
        sources=RepoSources(
            source_roots=settings.source_repo_roots,
            workspace_root=settings.workspace_root,
            artifact_root=settings.artifact_root,
            allowed_schemes=settings.git_allowed_schemes,
        ),
    )


def create_timeout_seconds(settings: Settings) -> int:
    """How long a session id stays reserved by its create: the slowest part (a clone, or a runner
    pod on its way to Ready) plus a margin."""
    slowest = float(settings.clone_timeout_seconds)
    if settings.workspace_backend == "kubernetes":
        slowest = max(slowest, settings.k8s_ready_timeout_seconds)
    return int(slowest) + 120


def kubernetes_manager(workspaces: WorkspaceManager) -> KubernetesWorkspaceManager | None:
    """The kubernetes backend's manager, if that is what `workspaces` is."""
    module = sys.modules.get("serve_app.adapters.kubernetes_workspace")
    if module is None:
        return None
    kind: type[KubernetesWorkspaceManager] = module.KubernetesWorkspaceManager
    return workspaces if isinstance(workspaces, kind) else None


async def check_workspaces(workspaces: WorkspaceManager) -> None:
    """At start-up: the kubernetes backend's API must answer (raises `RuntimeError` naming its
    URL); the local backend has nothing to check."""
    if (manager := kubernetes_manager(workspaces)) is not None:
        await manager.check()


async def close_workspaces(workspaces: WorkspaceManager) -> None:
    """When the replica stops: the kubernetes backend's API client (its connection pool)."""
    if (manager := kubernetes_manager(workspaces)) is not None:
        await asyncio.to_thread(manager.close)


def start_pod_janitor(
    settings: Settings,
    workspaces: WorkspaceManager,
    stores: Stores,
    *,
    counters: Sequence[PodDeletionCounter] = (),
    clock: Callable[[], datetime] = utcnow,
) -> asyncio.Task[None] | None:
    """The pod janitor's task (kubernetes backend, `WORKSPACE_K8S_POD_JANITOR_ENABLED`): it sweeps
    at once and then every `WORKSPACE_K8S_POD_JANITOR_INTERVAL_SECONDS` while this replica holds
    the janitor lease, its deletions counted in `stores.metrics` and `counters`. None when there
    is nothing to sweep."""
    manager = kubernetes_manager(workspaces)
    if not settings.k8s_pod_janitor_enabled or manager is None:
        return None
    from serve_app.adapters.pod_janitor import PodJanitor, run_pod_janitor

    janitor = PodJanitor.from_settings(
        manager.api_client,
        settings,
        stores.sessions,
        counters=[stores.metrics, *counters],
        clock=clock,
    )
    return asyncio.create_task(
        run_pod_janitor(janitor, stores.janitor_lease, settings.k8s_pod_janitor_interval_seconds)
    )


ARTIFACT_RETENTION_MARGIN_SECONDS = 3600


def artifact_retention_seconds(settings: Settings) -> int:
    """Artifacts live as long as their invocation record (its TTL counts from its last write,
    when the artifacts are written too), plus a margin; no TTL, no removal."""
    ttl = settings.invocation_store_ttl_seconds
    return ttl + ARTIFACT_RETENTION_MARGIN_SECONDS if ttl > 0 else 0


async def sweep_once(service: SessionService, lease: Lease, interval_seconds: float) -> int:
    """Sweep if this process holds the sweeper lease (one sweeper across all replicas): expired
    sessions, then artifacts that outlived their invocations."""
    if not await lease.acquire(interval_seconds * 2):
        return 0
    removed = await service.sweep_expired()
    ended = await service.sweep_abandoned()
    if ended:
        log.info("sweeper ended %d invocations whose replica stopped", ended)
    await service.sweep_artifacts()
    return removed


async def run_sweeper(service: SessionService, lease: Lease, interval_seconds: float) -> None:
    """Remove expired sessions nobody touches again, every `interval_seconds`, until cancelled."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            removed = await sweep_once(service, lease, interval_seconds)
            if removed:
                log.info("sweeper removed %d expired sessions", removed)
        except Exception:
            log.exception("session sweep failed")
