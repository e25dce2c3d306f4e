"""FastAPI dependencies as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serve_app.api.ports import SessionManagerPort


def get_manager(request: Request) -> SessionManagerPort:
    manager: SessionManagerPort = request.app.state.manager
    return manager


ManagerDep = Annotated[SessionManagerPort, Depends(get_manager)]
