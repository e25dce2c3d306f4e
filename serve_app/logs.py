"""Structured logs: one JSON object per line, carrying the request, session and invocation ids
of the call being served (context variables, so concurrent calls never mix them)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)
invocation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "invocation_id", default=None
)

LOGGERS = ("serve_app", "workspace")


def bind(*, request: str | None = None, session: str | None = None,
         invocation: str | None = None) -> None:  # fmt: skip
    """Attach ids to the current context (and the tasks it starts)."""
    if request is not None:
        request_id.set(request)
    if session is not None:
        session_id.set(session)
    if invocation is not None:
        invocation_id.set(invocation)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, variable in (
            ("request_id", request_id),
            ("session_id", session_id),
            ("invocation_id", invocation_id),
        ):
            value = variable.get()
            if value:
                entry[name] = value
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            entry.update(audit)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str = "info") -> None:
    """JSON lines on stderr for the service's loggers; idempotent."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonFormatter())
            logger.addHandler(handler)
            logger.propagate = False
