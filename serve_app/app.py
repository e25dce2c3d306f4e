"""The Ray Serve application: three deployments composed by `build_app`. With `handles.py`, the
only module that imports Ray; each deployment is a thin shell around plain-Python services."""

import asyncio
import logging
import os
from typing import Any, TypeVar

import ray
import redis
from fastapi import FastAPI
from opentelemetry import trace
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from serve_app import logs, tracing
from serve_app.api.app import create_app
from serve_app.api.auth import Authenticator
from serve_app.api.ports import SessionManagerPort
from serve_app.config import Settings
from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.invoking import InvokeCommand
from serve_app.domain.models import (
    Invocation,
    InvocationStatus,
    Principal,
    Session,
)
from serve_app.domain.observability import (
    DURATION_BUCKETS,
    SESSION_CREATE_BUCKETS,
    denial_reason,
)
from serve_app.domain.ports import Executor
from serve_app.domain.results import InvokeOutcome
from serve_app.handles import proxy, serve_methods, served
from serve_app.wiring import (
    Stores,
    build_executor,
    build_session_service,
    build_stores,
    build_workspaces,
    check_workspaces,
    close_workspaces,
    run_sweeper,
    start_pod_janitor,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

AppArgs = Settings
"""`build_app`'s single argument: the settings, each defaulting to its environment variable."""


class RayMetrics:
    """The application's metric families on Ray's per-node metrics port too (Ray prefixes them
    with `ray_` and adds deployment/replica tags); counted by the replica that ran the call."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self._invocations = metrics.Counter(
            "workspace_invocations",
            "Terminal invocations.",
            tag_keys=("tool", "status"),  # type: ignore[arg-type]  # Ray annotates a 1-tuple
        )
        self._denied = metrics.Counter(
            "workspace_invocations_denied",
            "Denied invocations.",
            tag_keys=("tool", "reason"),  # type: ignore[arg-type]
        )
        self._duration = metrics.Histogram(
            "workspace_invocation_duration_seconds",
            "Invocation duration.",
            boundaries=list(DURATION_BUCKETS),
            tag_keys=("tool",),
        )
        self._create = metrics.Histogram(
            "workspace_session_create_duration_seconds",
            "Session creation time.",
            boundaries=list(SESSION_CREATE_BUCKETS),
        )
        self._pod_deletions = metrics.Counter(
            "workspace_k8s_pod_deletions",
            "Pods the kubernetes backend's janitor deleted.",
            tag_keys=("reason",),
        )

    async def invocation_finished(self, invocation: Invocation, session: Session) -> None:
        tool = invocation.tool_name.lower()
        self._invocations.inc(tags={"tool": tool, "status": invocation.status.value})
        if invocation.status is InvocationStatus.DENIED:
            reason = denial_reason(invocation.error.message if invocation.error else "")
            self._denied.inc(tags={"tool": tool, "reason": reason})
        self._duration.observe(invocation.duration_ms / 1000, tags={"tool": tool})

    async def session_created(self, session: Session, seconds: float) -> None:
        self._create.observe(seconds)

    async def pod_deleted(self, reason: str) -> None:
        self._pod_deletions.inc(tags={"reason": reason})


class ToolExecutorReplica:
    def __init__(self, settings: Settings) -> None:
        _observe(settings)
        if not ray.get_gpu_ids():
            # A replica without a GPU must not see the node's GPUs, nor let its tools see them.
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        self._service = build_executor(settings)

    async def execute(
        self, request: ExecutionRequest, context: dict[str, str] | None = None
    ) -> ExecutionResult:
        attributes = {
            "workspace.deployment": "ToolExecutor",
            "workspace.tool": request.tool_name,
            "workspace.invocation_id": request.invocation_id,
            "workspace.session_id": request.session.id,
        }
        with served(context, f"execute {request.tool_name}", **attributes):
            logs.bind(invocation=request.invocation_id)
            return await self._service.execute(request)

    def visible_devices(self) -> str | None:
        return os.environ.get("CUDA_VISIBLE_DEVICES")

    async def __del__(self) -> None:
        # On a graceful stop: the tools' long-lived clients are closed with the replica.
        await self._service.aclose()


@serve_methods(SessionManagerPort, target="_service", span_prefix="SessionManager")
class SessionManagerReplica:
    """The session manager behind a handle: every method of `SessionManagerPort` serves the call
    with `SessionService` (generated by `serve_methods`), `invoke` with its own span details."""

    async def __init__(  # type: ignore[misc]  # Serve awaits async constructors
        self, executor: DeploymentHandle[Any], settings: Settings
    ) -> None:
        _observe(settings)
        self._stores = build_stores(settings)
        _refuse_unshared_replicas(self._stores)
        await self._stores.check()
        executor_port = proxy(Executor, executor)  # type: ignore[type-abstract]
        # The workspace backend: local directories, or runner pods through this replica's one
        # Kubernetes API client (whose API must answer now, or the deployment fails).
        self._workspaces = workspaces = build_workspaces(settings)
        await check_workspaces(workspaces)
        ray_metrics = RayMetrics()
        self._service = build_session_service(
            settings,
            executor_port,
            stores=self._stores,
            observers=[ray_metrics],
            workspaces=workspaces,
        )
        self._sweeper = asyncio.create_task(
            run_sweeper(self._service, self._stores.sweeper_lease, settings.sweep_interval_seconds)
        )
        self._janitor = start_pod_janitor(
            settings, workspaces, self._stores, counters=[ray_metrics]
        )
        self._drain_seconds = _drain_seconds()

    async def invoke(
        self,
        session_id: str,
        tool_name: str,
        command: InvokeCommand,
        caller: Principal | None = None,
        context: dict[str, str] | None = None,
    ) -> InvokeOutcome:
        attributes = {
            "workspace.deployment": "SessionManager",
            "workspace.tool": tool_name,
            "workspace.session_id": session_id,
            "workspace.correlation_id": command.correlation_id or "",
            "workspace.trace_name": "workspace.tools",
        }
        with served(context, tool_name, **attributes) as span:
            outcome = await self._service.invoke(session_id, tool_name, command, caller)
            invocation = outcome.invocation
            span.update_name(invocation.span_name or tool_name)
            span.set_attribute("workspace.invocation_id", invocation.id)
            span.set_attribute("workspace.invocation_status", invocation.status.value)
            span.set_attribute("workspace.duration_ms", invocation.duration_ms)
            if invocation.error is not None:
                span.set_attribute("workspace.error_code", invocation.error.code)
                span.set_status(trace.Status(trace.StatusCode.ERROR, invocation.error.message))
            else:
                span.set_status(trace.Status(trace.StatusCode.OK))
            return outcome

    async def __del__(self) -> None:
        # Serve calls this on a graceful stop once no request is ongoing (or never: it kills the
        # replica `graceful_shutdown_timeout_s` after the stop began, and the invocation leases
        # then run out). What still runs here was called by a client that went away: it gets
        # half the budget to end, then `drain` ends it `failed` before the stores close.
        self._sweeper.cancel()
        if self._janitor is not None:
            self._janitor.cancel()
        await self._service.drain(timeout=self._drain_seconds)
        await self._stores.close()
        await close_workspaces(self._workspaces)


def _drain_seconds() -> float:
    """Half of this replica's graceful shutdown budget (Serve's default 20 s gives 10 s)."""
    budget: float = serve.get_replica_context()._deployment_config.graceful_shutdown_timeout_s
    return budget / 2


def _observe(settings: Settings) -> None:
    """Each replica process: JSON logs, and tracing when enabled."""
    logs.configure(settings.log_level)
    tracing.configure(settings)


def _refuse_unshared_replicas(stores: Stores) -> None:
    """In-memory state lives in one process: more than one replica would split it."""
    if stores.shared:
        return
    context = serve.get_replica_context()
    autoscaling = context._deployment_config.autoscaling_config
    most = max(context.world_size, autoscaling.max_replicas if autoscaling else 1)
    if most > 1:
        raise RuntimeError(
            "SessionManager with in-memory stores must run exactly one replica (configured: "
            f"{most}); set SESSION_STORE_BACKEND=valkey and INVOCATION_STORE_BACKEND=valkey "
            "to run several"
        )


def _check_valkey(settings: Settings) -> None:
    """Fail the deployment at once, naming the address, when Valkey does not answer."""
    if not settings.uses_valkey:
        return
    host, port = settings.valkey_address
    client = redis.Redis(
        host=host,
        port=port,
        db=settings.valkey_db,
        password=settings.valkey_password.get_secret_value() or None,
        socket_timeout=settings.valkey_timeout_seconds,
        socket_connect_timeout=settings.valkey_timeout_seconds,
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise RuntimeError(f"cannot reach Valkey at {host}:{port}: {exc}") from exc
    finally:
        client.close()


class IngressReplica:
    def __init__(self, session_manager: DeploymentHandle[Any], settings: Settings) -> None:
        _observe(settings)
        self._manager = proxy(SessionManagerPort, session_manager)  # type: ignore[type-abstract]
        self._version = settings.version
        self._sandbox = settings.sandbox
        # The token comes from this replica's environment (secrets never travel in arguments).
        self._authenticator = Authenticator.from_settings(settings)
        if self._authenticator.trusted and not self._authenticator.token:
            raise RuntimeError(
                "WORKSPACE_AUTH_MODE=trusted_headers but WORKSPACE_AUTH_SHARED_TOKEN is not set "
                "in this replica's environment"
            )

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve's proxy echoes x-request-id itself.
        return create_app(
            self._manager,
            authenticator=self._authenticator,
            version=self._version,
            echo_request_id=False,
            sandbox=self._sandbox,
        )


# Defaults for a small machine; ray_config/*.yaml overrides them per environment.
ToolExecutor = serve.deployment(
    name="ToolExecutor",
    max_ongoing_requests=256,
    ray_actor_options={"num_cpus": 0.25, "num_gpus": 0},
)(ToolExecutorReplica)
SessionManager = serve.deployment(
    name="SessionManager",
    max_ongoing_requests=1024,
    max_constructor_retry_count=3,
    ray_actor_options={"num_cpus": 0.25},
)(SessionManagerReplica)
Ingress = serve.deployment(
    name="Ingress",
    max_ongoing_requests=1024,
    ray_actor_options={"num_cpus": 0.25},
)(serve.ingress()(IngressReplica))


def build_app(args: AppArgs) -> Application:
    """Compose Ingress → SessionManager → ToolExecutor with one set of settings."""
    logs.configure(args.log_level)
    _check_valkey(args)
    executor = ToolExecutor.bind(args)
    manager = SessionManager.bind(executor, args)
    app: Application = Ingress.bind(manager, args)
    return app
