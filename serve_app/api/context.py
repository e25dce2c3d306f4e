"""Per-request context: the request id (honoured from `x-request-id`, else generated, and echoed)
and the server span that continues the caller's W3C trace; its trace id is returned in
`X-Trace-Id`."""

from __future__ import annotations

import uuid

from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app import logs, tracing

UNTRACED_PATHS = frozenset({"/healthz", "/metrics"})
MAX_REQUEST_ID = 128


def _request_id(raw: str | None) -> str:
    if raw and len(raw) <= MAX_REQUEST_ID and raw.isprintable() and " " not in raw:
        return raw
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, echo_request_id: bool = True) -> None:
        self.app = app
        self.echo_request_id = echo_request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1")
                   for key, value in scope["headers"]}  # fmt: skip
        request_id = _request_id(headers.get("x-request-id"))
        logs.bind(request=request_id)
        path: str = scope["path"]
        if path in UNTRACED_PATHS:
            await self.app(scope, receive, self._echo(send, request_id, None))
            return
        with tracing.tracer().start_as_current_span(
            f"{scope['method']} {path}",
            context=tracing.extract(headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": scope["method"],
                "url.path": path,
                "workspace.deployment": "Ingress",
                "workspace.request_id": request_id,
            },
        ) as span:
            await self.app(scope, receive, self._echo(send, request_id, span))

    def _echo(self, send: Send, request_id: str, span: object) -> Send:
        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if self.echo_request_id:
                    headers["x-request-id"] = request_id
                context = getattr(span, "get_span_context", lambda: None)()
                if context is not None and context.is_valid:
                    trace_id = format_trace_id(context.trace_id)
                    headers["x-trace-id"] = trace_id
                    headers["traceparent"] = (
                        f"00-{trace_id}-{format_span_id(context.span_id)}-"
                        f"{int(context.trace_flags):02x}"
                    )
                    span.set_attribute("http.response.status_code", message["status"])  # type: ignore[attr-defined]
            await send(message)

        return send_with_context
