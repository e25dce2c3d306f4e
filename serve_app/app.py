"""The Ray Serve application: three deployments composed by `build_app`. The only module that
imports Ray; each deployment is a thin shell around plain-Python services."""

import asyncio
import logging
import os
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
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
from serve_app.config import Settings
from serve_app.domain.capability import Capability
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.execution import ExecutionRequest, ExecutionResult
from serve_app.domain.models import (
    Artifact,
    Invocation,
    InvocationStatus,
    LogLine,
    Principal,
    Session,
)
from serve_app.domain.observability import (
    DURATION_BUCKETS,
    SESSION_CREATE_BUCKETS,
    AuditRecord,
    MetricsSnapshot,
    denial_reason,
)
from serve_app.domain.service import CreateSession, InvokeCommand, InvokeOutcome
from serve_app.wiring import (
    Stores,
    build_executor,
    build_session_service,
    build_stores,
    run_sweeper,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

AppArgs = Settings
"""`build_app`'s single argument: the settings, each defaulting to its environment variable."""


async def _remote(call: Awaitable[T]) -> T:
    """Await a handle call, re-raising the domain's errors as themselves."""
    try:
        return await call
    except ServiceError:
        raise
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ServiceError):
            raise ServiceError(cause.code, cause.message, cause.retryable) from None
        log.error("remote call failed: %s", exc)
        raise ServiceError(ErrorCode.INTERNAL, "internal error") from None
    except (ray.exceptions.RayError, RuntimeError) as exc:
        log.error("remote call failed: %s", exc)
        raise ServiceError(ErrorCode.UNAVAILABLE, "service temporarily unavailable") from None


def _context() -> dict[str, str]:
    """What crosses a handle besides the call: the trace context and the request id."""
    request_id = logs.request_id.get()
    return tracing.inject({"x-request-id": request_id} if request_id else {})


@contextmanager
def _served(context: dict[str, str] | None, name: str, **attributes: str) -> Iterator[trace.Span]:
    """Serve one handle call inside the caller's trace, with its request id in the logs."""
    context = context or {}
    logs.bind(request=context.get("x-request-id"), session=attributes.get("workspace.session_id"))
    with tracing.tracer().start_as_current_span(
        name, context=tracing.extract(context), attributes=attributes
    ) as span:
        yield span


class HandleExecutor:
    """The executor port over a DeploymentHandle to ToolExecutor."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        result: ExecutionResult = await _remote(
            self._handle.execute.remote(request, context=_context())
        )
        return result


class HandleSessionManager:
    """The HTTP layer's session-manager port over a DeploymentHandle to SessionManager."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def create_session(
        self, request: CreateSession, caller: Principal | None = None
    ) -> Session:
        result: Session = await _remote(
            self._handle.create_session.remote(request, caller, context=_context())
        )
        return result

    async def get_session(self, session_id: str, caller: Principal | None = None) -> Session:
        result: Session = await _remote(
            self._handle.get_session.remote(session_id, caller, context=_context())
        )
        return result

    async def close_session(self, session_id: str, caller: Principal | None = None) -> None:
        await _remote(self._handle.close_session.remote(session_id, caller, context=_context()))

    async def list_tools(
        self, session_id: str, caller: Principal | None = None
    ) -> list[Capability]:
        result: list[Capability] = await _remote(
            self._handle.list_tools.remote(session_id, caller, context=_context())
        )
        return result

    async def get_invocation(
        self, invocation_id: str, caller: Principal | None = None
    ) -> Invocation:
        result: Invocation = await _remote(
            self._handle.get_invocation.remote(invocation_id, caller, context=_context())
        )
        return result

    async def get_logs(
        self, invocation_id: str, caller: Principal | None = None
    ) -> list[LogLine] | None:
        result: list[LogLine] | None = await _remote(
            self._handle.get_logs.remote(invocation_id, caller, context=_context())
        )
        return result

    async def get_artifacts(
        self, invocation_id: str, caller: Principal | None = None
    ) -> list[Artifact] | None:
        result: list[Artifact] | None = await _remote(
            self._handle.get_artifacts.remote(invocation_id, caller, context=_context())
        )
        return result

    async def metrics(self) -> MetricsSnapshot:
        result: MetricsSnapshot = await _remote(self._handle.metrics.remote(context=_context()))
        return result

    async def audit_trail(
        self, session_id: str, caller: Principal | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        result: list[AuditRecord] = await _remote(
            self._handle.audit_trail.remote(session_id, caller, limit, context=_context())
        )
        return result

    async def invoke(
        self,
        session_id: str,
        tool_name: str,
        command: InvokeCommand,
        caller: Principal | None = None,
    ) -> InvokeOutcome:
        result: InvokeOutcome = await _remote(
            self._handle.invoke.remote(session_id, tool_name, command, caller, context=_context())
        )
        return result


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

    async def invocation_finished(self, invocation: Invocation, session: Session) -> None:
        tool = invocation.tool_name.lower()
        self._invocations.inc(tags={"tool": tool, "status": invocation.status.value})
        if invocation.status is InvocationStatus.DENIED:
            reason = denial_reason(invocation.error.message if invocation.error else "")
            self._denied.inc(tags={"tool": tool, "reason": reason})
        self._duration.observe(invocation.duration_ms / 1000, tags={"tool": tool})

    async def session_created(self, session: Session, seconds: float) -> None:
        self._create.observe(seconds)


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
        with _served(context, f"execute {request.tool_name}", **attributes):
            logs.bind(invocation=request.invocation_id)
            return await self._service.execute(request)

    def visible_devices(self) -> str | None:
        return os.environ.get("CUDA_VISIBLE_DEVICES")


class SessionManagerReplica:
    async def __init__(  # type: ignore[misc]  # Serve awaits async constructors
        self, executor: DeploymentHandle[Any], settings: Settings
    ) -> None:
        _observe(settings)
        self._stores = build_stores(settings)
        _refuse_unshared_replicas(self._stores)
        await self._stores.check()
        self._service = build_session_service(
            settings, HandleExecutor(executor), stores=self._stores, observers=[RayMetrics()]
        )
        self._sweeper = asyncio.create_task(
            run_sweeper(self._service, self._stores.sweeper_lease, settings.sweep_interval_seconds)
        )

    async def create_session(
        self,
        request: CreateSession,
        caller: Principal | None = None,
        context: dict[str, str] | None = None,
    ) -> Session:
        with _served(context, "SessionManager.create_session"):
            return await self._service.create_session(request, caller)

    async def get_session(
        self,
        session_id: str,
        caller: Principal | None = None,
        context: dict[str, str] | None = None,
    ) -> Session:
        with _served(context, "SessionManager.get_session", **{"workspace.session_id": session_id}):
            return await self._service.get_session(session_id, caller)

    async def close_session(
        self,
        session_id: str,
        caller: Principal | None = None,
        context: dict[str, str] | None = None,
    ) -> None:
        with _served(
            context, "SessionManager.close_session", **{"workspace.session_id": session_id}
        ):
            return await self._service.close_session(session_id, caller)

    async def list_tools(
        self,
        session_id: str,
        caller: Principal | None = None,
        context: dict[str, str] | None = None,
    ) -> list[Capability]:
        with _served(context, "SessionManager.list_tools", **{"workspace.session_id": session_id}):
            return await self._service.list_tools(session_id, caller)

    async def get_invocation(
        self,
        invocation_id: str,
        caller: Principal | None = None,
        context: dict[str, str] | None = None,
    ) -> Invocation:
        with _served(context, "SessionManager.get_invocation"):
            return await self._service.get_invocation(invocation_id, caller)

    async def get_logs(
        self,
        invocation_id: str,
        caller: Principal | None = None,
        context: dict[str, str] | None = None,
    ) -> list[LogLine] | None:
        with _served(context, "SessionManager.get_logs"):
            return await self._service.get_logs(invocation_id, caller)

    async def get_artifacts(
        self,
        invocation_id: str,
        caller: Principal | None = None,
        context: dict[str, str] | None = None,
    ) -> list[Artifact] | None:
        with _served(context, "SessionManager.get_artifacts"):
            return await self._service.get_artifacts(invocation_id, caller)

    async def metrics(self, context: dict[str, str] | None = None) -> MetricsSnapshot:
        with _served(context, "SessionManager.metrics"):
            return await self._service.metrics()

    async def audit_trail(
        self,
        session_id: str,
        caller: Principal | None = None,
        limit: int = 100,
        context: dict[str, str] | None = None,
    ) -> list[AuditRecord]:
        with _served(context, "SessionManager.audit_trail", **{"workspace.session_id": session_id}):
            return await self._service.audit_trail(session_id, caller, limit)

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
        with _served(context, tool_name, **attributes) as span:
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
        self._sweeper.cancel()
        await self._service.drain(timeout=10)
        await self._stores.close()


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
        self._manager = HandleSessionManager(session_manager)
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
