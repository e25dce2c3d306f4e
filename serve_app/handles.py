"""An interface declared once as a Protocol, carried across a Serve DeploymentHandle: a proxy
that forwards each of its methods to the handle, and the matching methods of the replica that
serves them inside the caller's trace. Nothing here knows which interface it carries."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import ray
from opentelemetry import trace
from ray.serve.handle import DeploymentHandle

from serve_app import logs, tracing
from serve_app.domain.errors import ErrorCode, ServiceError

log = logging.getLogger(__name__)
T = TypeVar("T")
P = TypeVar("P")
Context = dict[str, str]


def methods(protocol: type[Any]) -> list[str]:
    """The public methods a Protocol declares."""
    return [
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    ]


async def remote(call: Awaitable[T]) -> T:
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


def outgoing_context() -> Context:
    """What crosses a handle besides the call: the trace context and the request id."""
    request_id = logs.request_id.get()
    return tracing.inject({"x-request-id": request_id} if request_id else {})


@contextmanager
def served(context: Context | None, name: str, **attributes: str) -> Iterator[trace.Span]:
    """Serve one handle call inside the caller's trace, with its request id in the logs."""
    context = context or {}
    logs.bind(request=context.get("x-request-id"), session=attributes.get("workspace.session_id"))
    with tracing.tracer().start_as_current_span(
        name, context=tracing.extract(context), attributes=attributes
    ) as span:
        yield span


def proxy(protocol: type[P], handle: DeploymentHandle[Any]) -> P:
    """An object implementing `protocol` whose every method is a call through `handle`. (mypy
    wants `# type: ignore[type-abstract]` where a Protocol is passed as a class.)"""

    def forward(name: str) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            method = getattr(handle, name)
            return await remote(method.remote(*args, context=outgoing_context(), **kwargs))

        call.__name__ = name
        return call

    members = {name: staticmethod(forward(name)) for name in methods(protocol)}
    forwarding = type(f"{protocol.__name__}OverHandle", (), members)
    return cast(P, forwarding())


def serve_methods(
    protocol: type[Any], *, target: str, span_prefix: str
) -> Callable[[type[T]], type[T]]:
    """A class decorator for a replica: for each method of `protocol` the class does not define
    itself, a method that serves the call (see `served`) by calling the same method of the
    object in the attribute `target`. A first parameter named `session_id` becomes the span's
    `workspace.session_id`."""

    def serving(name: str) -> Callable[..., Awaitable[Any]]:
        parameters = list(inspect.signature(getattr(protocol, name)).parameters)[1:]
        by_session = bool(parameters) and parameters[0] == "session_id"

        async def call(self: Any, *args: Any, context: Context | None = None, **kwargs: Any) -> Any:
            attributes: dict[str, str] = {}
            if by_session:
                session_id = args[0] if args else kwargs["session_id"]
                attributes["workspace.session_id"] = str(session_id)
            with served(context, f"{span_prefix}.{name}", **attributes):
                return await getattr(getattr(self, target), name)(*args, **kwargs)

        call.__name__ = name
        return call

    def decorate(cls: type[T]) -> type[T]:
        for name in methods(protocol):
            if name not in vars(cls):
                setattr(cls, name, serving(name))
        return cls

    return decorate
