"""The FastAPI application factory. It receives its collaborators, so tests drive it with
`TestClient` and an in-process session manager, and Serve wraps the same app in its ingress."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from serve_app import __version__
from serve_app.api.auth import Authenticator
from serve_app.api.body_limit import BodyLimitMiddleware
from serve_app.api.context import RequestContextMiddleware
from serve_app.api.openapi import install_openapi
from serve_app.api.ports import SessionManagerPort
from serve_app.api.responses import JSONLineResponse, error_response
from serve_app.api.routes import health, invocations, sessions
from serve_app.domain.errors import ErrorCode, ServiceError

log = logging.getLogger(__name__)

_EMPTY_SESSION_ID = re.compile(r"^/v1/sessions/(/.*)?$")
_EMPTY_INVOCATION_ID = re.compile(r"^/v1/invocations/(/.*)?$")


def create_app(
    manager: SessionManagerPort,
    *,
    authenticator: Authenticator | None = None,
    version: str = __version__,
    echo_request_id: bool = True,
    sandbox: str = "bubblewrap",
) -> FastAPI:
    app = FastAPI(
        title="workspace",
        version=version,
        description="Governed tool execution for coding agents: sessions, a policy-checked tool "
        "catalog, and recorded invocations.",
        redirect_slashes=False,
    )
    app.router.redirect_slashes = False
    app.state.manager = manager
    app.state.sandbox = sandbox
    app.state.authenticator = authenticator or Authenticator()
    routers = (health.router, sessions.router, invocations.router)
    for router in routers:
        app.include_router(router)
    app.state.routes = [route for router in routers for route in router.routes]
    install_openapi(app)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestContextMiddleware, echo_request_id=echo_request_id)

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONLineResponse:
        return error_response(exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONLineResponse:
        return error_response(ErrorCode.INVALID_ARGUMENT, _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONLineResponse:
        if exc.status_code == 405:
            allow = ", ".join(_allowed_methods(request))
            headers = {"Allow": allow} if allow else None
            return error_response(ErrorCode.METHOD_NOT_ALLOWED, "method not allowed", None, headers)
        if exc.status_code == 404:
            if _EMPTY_SESSION_ID.match(request.url.path):
                return error_response(ErrorCode.INVALID_ARGUMENT, "session_id is required")
            if _EMPTY_INVOCATION_ID.match(request.url.path):
                return error_response(ErrorCode.INVALID_ARGUMENT, "invocation_id is required")
            return error_response(ErrorCode.NOT_FOUND, "route not found")
        if exc.status_code == 400:
            return error_response(ErrorCode.INVALID_ARGUMENT, "invalid request body")
        return error_response(ErrorCode.INTERNAL, str(exc.detail), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _exc: Exception) -> JSONLineResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(ErrorCode.INTERNAL, "internal error")

    return app


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (the router names only its first route's),
    for the `Allow` header of a 405 (RFC 9110 §15.5.6)."""
    methods: set[str] = set()
    for route in request.app.state.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def _describe(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors()[:3]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        if error.get("type") == "missing" and not location:
            problems.append("body is required (send {} at minimum)")
        elif error.get("type") == "json_invalid":
            problems.append("malformed JSON")
        else:
            problems.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "invalid request body: " + "; ".join(problems)
