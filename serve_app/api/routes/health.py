"""Liveness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from serve_app.api.responses import JSONLineResponse
from serve_app.api.schemas import HealthResponse

router = APIRouter(tags=["health"])

OTHER_METHODS = ["HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> JSONLineResponse:
    """Always `{"status":"ok"}` while the ingress serves, for any method; never authenticated."""
    return JSONLineResponse({"status": "ok"})


router.add_api_route("/healthz", healthz, methods=OTHER_METHODS, include_in_schema=False)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics() -> Response:
    """Prometheus text format of this ingress replica's registry."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
