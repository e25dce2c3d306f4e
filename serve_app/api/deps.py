"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serve_app.api.auth import Authenticator
from serve_app.api.ports import SessionManagerPort
from serve_app.domain.models import Principal


def get_manager(request: Request) -> SessionManagerPort:
    manager: SessionManagerPort = request.app.state.manager
    return manager


def get_caller(request: Request) -> Principal | None:
    """The authenticated principal (trusted_headers mode) or None (payload mode)."""
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.caller(request)


ManagerDep = Annotated[SessionManagerPort, Depends(get_manager)]
CallerDep = Annotated[Principal | None, Depends(get_caller)]
