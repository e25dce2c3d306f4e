"""The tool executor: runs one tool call against a workspace and reports a result.

It receives everything it needs in the request (the session's runtime descriptor), so any replica
can serve any session; it holds no per-session state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.execution import ArtifactBlob, ExecutionRequest, ExecutionResult
from serve_app.domain.models import InvocationError, Session
from serve_app.execution.process import CommandResult, child_environment, run_command
from serve_app.tools import ToolRegistry
from serve_app.tools.base import ToolContext, ToolFailed, ToolResult

log = logging.getLogger(__name__)
T = TypeVar("T")


def session_home(session: Session) -> Path:
    """Per-session HOME for child processes, beside the workspace and removed with it."""
    return Path(session.workspace_path).parent / "home"


class ExecutionService:
    def __init__(self, registry: ToolRegistry, *, blocking_threads: int = 64) -> None:
        self._registry = registry
        self._pool = ThreadPoolExecutor(max_workers=blocking_threads, thread_name_prefix="tool")

    async def _blocking(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function)

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        tool = self._registry.get(request.tool_name)
        if tool is None:
            return _failure(ErrorCode.NOT_FOUND, "tool handler not found", exit_code=-1)
        workspace = Path(request.session.workspace_path)
        home = session_home(request.session)
        child_env = child_environment(home=home, workspace=workspace)

        async def run(
            argv: Sequence[str],
            *,
            cwd: Path,
            timeout: float,
            stdin: bytes | None = None,
            output_limit: int = 256 * 1024,
            env: Mapping[str, str] | None = None,
        ) -> CommandResult:
            # `env` adds tool-specific variables to the scrubbed child environment.
            return await run_command(
                argv,
                cwd=cwd,
                env=child_env if env is None else {**child_env, **env},
                timeout=timeout,
                stdin=stdin,
                output_limit=output_limit,
            )

        context = ToolContext(
            session=request.session,
            invocation_id=request.invocation_id,
            deadline=time.monotonic() + request.timeout_seconds,
            run=run,
            blocking=self._blocking,
        )
        try:
            result: ToolResult = await asyncio.wait_for(
                tool.handler(context, request.args), request.timeout_seconds
            )
        except TimeoutError:
            return _failure(
                ErrorCode.TIMEOUT,
                f"{request.tool_name} timed out after {request.timeout_seconds:g}s",
                exit_code=124,
            )
        except ToolFailed as exc:
            return ExecutionResult(
                output=exc.output,
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
        return ExecutionResult(
            output=result.output,
            logs=result.logs,
            exit_code=result.exit_code,
            artifacts=[
                ArtifactBlob(name=a.name, content_type=a.content_type, data=a.data)
                for a in result.artifacts
            ],
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _failure(
    code: ErrorCode, message: str, *, exit_code: int = 1, retryable: bool | None = None
) -> ExecutionResult:
    retry = code is ErrorCode.TIMEOUT if retryable is None else retryable
    return ExecutionResult(
        exit_code=exit_code, error=InvocationError(code=code, message=message, retryable=retry)
    )
