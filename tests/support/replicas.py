"""A "replica" for tests: a SessionService with its own stores and connection pool behind the
HTTP app, as a SessionManager replica is; several share one Valkey."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.api.auth import Authenticator
from serve_app.config import Settings
from serve_app.wiring import build_executor, build_session_service, build_stores


@contextmanager
def replica(settings: Settings, authenticator: Authenticator | None = None) -> Iterator[TestClient]:
    stores = build_stores(settings)
    service = build_session_service(settings, build_executor(settings), stores=stores)
    with TestClient(create_app(service, authenticator=authenticator)) as client:
        client.app.state.stores = stores  # type: ignore[attr-defined]
        client.app.state.service = service  # type: ignore[attr-defined]
        yield client
