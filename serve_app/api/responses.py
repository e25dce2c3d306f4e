"""JSON responses of the contract: compact JSON with a trailing newline, envelopes, status codes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from serve_app.domain.errors import ErrorCode
from serve_app.domain.results import Failure

STATUS_BY_CODE: dict[str, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.POLICY_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.APPROVAL_REQUIRED: 428,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
}

STATUS_BY_FAILURE: dict[Failure, int] = {
    Failure.DENIED: 403,
    Failure.APPROVAL: 428,
    Failure.INVALID: 400,
    Failure.TOOL: 500,
    Failure.TIMEOUT: 504,
    Failure.INTERNAL: 500,
    Failure.UNAVAILABLE: 503,
}


class JSONLineResponse(JSONResponse):
    """Compact UTF-8 JSON followed by a newline, like the service this one replaces."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def wire(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def envelope(status: int = 200, **fields: Any) -> JSONLineResponse:
    body = {
        key: wire(value) if isinstance(value, BaseModel) else value for key, value in fields.items()
    }
    return JSONLineResponse(body, status_code=status)


def error_response(
    code: str,
    message: str,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONLineResponse:
    return JSONLineResponse(
        {"error": {"code": code, "message": message}},
        status_code=status or STATUS_BY_CODE.get(code, 500),
        headers=dict(headers) if headers else None,
    )
