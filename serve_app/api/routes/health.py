"""Liveness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from serve_app.api.deps import ManagerDep
from serve_app.api.prometheus import render
from serve_app.api.responses import JSONLineResponse
from serve_app.api.schemas import ErrorEnvelope, HealthResponse

router = APIRouter(tags=["health"])

OTHER_METHODS = ["HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> JSONLineResponse:
    """Always `{"status":"ok"}` while the ingress serves, for any method; never authenticated."""
    return JSONLineResponse({"status": "ok"})


# One route per method, so each is documented as an operation of its own (one operation id each).
for method in OTHER_METHODS:
    router.add_api_route("/healthz", healthz, methods=[method], response_model=HealthResponse)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}},
        405: {"model": ErrorEnvelope, "description": "Method not allowed"},
        500: {"model": ErrorEnvelope, "description": "Internal error"},
        503: {"model": ErrorEnvelope, "description": "State store unavailable (retry)"},
    },
)
async def metrics(request: Request, manager: ManagerDep) -> Response:
    """Prometheus text for the whole application (every replica's invocations when the state is
    in Valkey), whichever ingress replica answers. Never authenticated."""
    snapshot = await manager.metrics()
    body = render(snapshot, request.app.version, request.app.state.sandbox)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
