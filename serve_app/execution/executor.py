"""The tool executor: runs one tool call against a workspace and reports a result.

It receives everything it needs in the request (the session's runtime descriptor), so any replica
can serve any session; it holds no per-session state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pydantic_core

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.execution import ArtifactBlob, ExecutionRequest, ExecutionResult
from serve_app.domain.models import InvocationError, Session
from serve_app.runtime.interface import WorkspaceRuntime
from serve_app.runtime.local import LocalRuntime
from serve_app.runtime.sandbox import Sandbox
from serve_app.tools import ToolRegistry
from serve_app.tools.base import Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Output
from serve_app.tools.family import Clients
from serve_app.tools.fitting import encoded_size

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_POD_CONTAINER = "runner"
DEFAULT_POD_WORKDIR = "/workspace/repo"


class ExecutionService:
    def __init__(
        self,
        registry: ToolRegistry,
        *,
        sandbox: Sandbox | None = None,
        blocking_threads: int = 64,
        clients: Clients | None = None,
        kube: Callable[[], Any] | None = None,
    ) -> None:
        """`kube` gives the replica's Kubernetes `ApiClient` (made on its first call, then the same
        one): what runs the tools of sessions whose runtime is a runner pod."""
        self._registry = registry
        self._clients = clients
        self._kube = kube
        self._sandbox = sandbox if sandbox is not None else Sandbox()
        self._pool = ThreadPoolExecutor(max_workers=blocking_threads, thread_name_prefix="tool")

    @property
    def sandbox(self) -> Sandbox:
        return self._sandbox

    async def _blocking(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function)

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        tool = self._registry.get(request.tool_name)
        if tool is None:
            return _failure(ErrorCode.NOT_FOUND, "tool handler not found", exit_code=-1)
        deadline = time.monotonic() + request.timeout_seconds
        try:
            runtime = self._runtime(request, tool, deadline)
        except ServiceError as exc:
            return _failure(exc.code, exc.message, exit_code=-1)
        context = ToolContext(
            session=request.session,
            invocation_id=request.invocation_id,
            deadline=deadline,
            runtime=runtime,
            blocking=self._blocking,
            output_limit=(tool.capability.constraints.output_limit_kb or 256) * 1024,
        )
        try:
            result: ToolResult = await asyncio.wait_for(
                tool(context, request.args), request.timeout_seconds
            )
        except TimeoutError:
            return _failure(
                ErrorCode.TIMEOUT,
                f"{request.tool_name} timed out after {request.timeout_seconds:g}s",
                exit_code=124,
            )
        except ToolFailed as exc:
            return ExecutionResult(
                output=reported(exc.output)[0],
                logs=exc.logs,
                exit_code=exc.exit_code,
                error=InvocationError(code=exc.code, message=exc.message, retryable=exc.retryable),
            )
        except ServiceError as exc:
            exit_code = 124 if exc.code is ErrorCode.TIMEOUT else 1
            return _failure(exc.code, exc.message, exit_code=exit_code, retryable=exc.retryable)
        except FileNotFoundError as exc:
            return _failure(ErrorCode.NOT_FOUND, f"not found: {exc.filename or exc}")
        except OSError as exc:
            return _failure(ErrorCode.EXECUTION_FAILED, f"{exc.strerror or exc}")
        except Exception:
            log.exception("tool %s crashed", request.tool_name)
            return _failure(ErrorCode.INTERNAL, f"{request.tool_name} failed unexpectedly")
        output, size = reported(result.output)
        limit = tool.capability.constraints.output_limit_kb
        if limit is not None and size > limit * 1024:
            return _failure(
                ErrorCode.EXECUTION_FAILED,
                f"{request.tool_name} output is {size} bytes, over its limit of {limit} KiB "
                "(ask for less: a narrower path, fewer results or fewer bytes)",
                exit_code=result.exit_code or 1,
            )
        return ExecutionResult(
            output=output,
            logs=result.logs,
            exit_code=result.exit_code,
            artifacts=[
                ArtifactBlob(name=a.name, content_type=a.content_type, data=a.data)
                for a in result.artifacts
            ],
        )

    def _runtime(self, request: ExecutionRequest, tool: Tool, deadline: float) -> WorkspaceRuntime:
        """The session's runtime, by `runtime.kind`."""
        session = request.session
        kind = session.runtime.kind
        if kind == "local":

            def check_deadline() -> None:
                if time.monotonic() > deadline:
                    raise ServiceError(ErrorCode.TIMEOUT, "tool deadline exceeded", retryable=True)

            return LocalRuntime(
                session,
                self._sandbox,
                network=tool.capability.constraints.network,
                blocking=self._blocking,
                check_deadline=check_deadline,
            )
        if kind == "kubernetes":
            return self._pod_runtime(session, deadline)
        raise ServiceError(
            ErrorCode.UNAVAILABLE,
            f"runtime kind {kind!r} is not available on this executor",
        )

    def _pod_runtime(self, session: Session, deadline: float) -> WorkspaceRuntime:
        """A runner pod's runtime: every operation an exec in the session's pod and container."""
        from serve_app.runtime.kubernetes import KubernetesRuntime
        from serve_app.runtime.pod_exec import PodExec, PodTarget

        runtime = session.runtime
        if not runtime.namespace or not runtime.pod_name:
            raise ServiceError(
                ErrorCode.INTERNAL, "the session's kubernetes runtime names no namespace and pod"
            )
        if self._kube is None:
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                "runtime kind 'kubernetes' is not available on this executor (no Kubernetes API)",
            )
        try:
            api = self._kube()
        except RuntimeError as exc:
            raise ServiceError(
                ErrorCode.UNAVAILABLE, f"the Kubernetes API is not configured: {exc}"
            ) from None
        target = PodTarget(
            namespace=runtime.namespace,
            pod=runtime.pod_name,
            container=runtime.container or DEFAULT_POD_CONTAINER,
        )
        return KubernetesRuntime(
            session,
            PodExec(api, target),
            workdir=runtime.workdir or DEFAULT_POD_WORKDIR,
            blocking=self._blocking,
            deadline=deadline,
            git_protocols=self._sandbox.git_protocols,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Close the thread pool and the tools' clients."""
        self.close()
        if self._clients is not None:
            await self._clients.close()


def reported(output: Any) -> tuple[Any, int]:
    """A handler's output as it is reported (an output model as its JSON object) and the size of
    its compact JSON, which the output limit bounds. A model is encoded once, in pydantic's
    serializer, and read back."""
    if isinstance(output, Output):
        encoded = output.__pydantic_serializer__.to_json(output, exclude_unset=True)
        return pydantic_core.from_json(encoded), len(encoded)
    return output, encoded_size(output)


def _failure(
    code: ErrorCode, message: str, *, exit_code: int = 1, retryable: bool | None = None
) -> ExecutionResult:
    retry = code is ErrorCode.TIMEOUT if retryable is None else retryable
    return ExecutionResult(
        exit_code=exit_code, error=InvocationError(code=code, message=message, retryable=retry)
    )
