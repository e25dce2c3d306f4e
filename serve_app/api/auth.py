"""Who is calling (contract §6). `payload` mode trusts the request body and checks nothing;
`trusted_headers` mode requires the shared token (compared in constant time) and takes tenant,
actor and roles from headers set by a trusted proxy."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.requests import Request

from serve_app.config import Settings
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.ids import is_safe_id
from serve_app.domain.models import Principal

MAX_TOKEN_BYTES = 4096
MAX_ACTOR_CHARS = 256
MAX_ROLES_CHARS = 2048
MAX_ROLES = 32


def unauthorized(message: str) -> ServiceError:
    return ServiceError(ErrorCode.UNAUTHORIZED, message)


@dataclass(frozen=True)
class Authenticator:
    mode: str = "payload"
    token: bytes = b""
    token_header: str = "X-Workspace-Auth-Token"
    tenant_header: str = "X-Workspace-Tenant-Id"
    actor_header: str = "X-Workspace-Actor-Id"
    roles_header: str = "X-Workspace-Roles"

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(
            mode=settings.auth_mode,
            token=settings.auth_shared_token.get_secret_value().encode(),
            token_header=settings.auth_token_header,
            tenant_header=settings.auth_tenant_header,
            actor_header=settings.auth_actor_header,
            roles_header=settings.auth_roles_header,
        )

    @property
    def trusted(self) -> bool:
        return self.mode == "trusted_headers"

    def caller(self, request: Request) -> Principal | None:
        """The authenticated principal, or None in payload mode (no authentication)."""
        if not self.trusted:
            return None
        if not self.token:
            raise unauthorized("authentication is not configured on this replica")
        presented = request.headers.get(self.token_header, "").encode("utf-8", "surrogateescape")
        # compare_digest runs in time independent of where the values differ; the length cap
        # only refuses absurd headers and reveals nothing about the token.
        if len(presented) > MAX_TOKEN_BYTES or not hmac.compare_digest(presented, self.token):
            raise unauthorized("invalid authentication token")
        tenant = request.headers.get(self.tenant_header, "").strip()
        actor = request.headers.get(self.actor_header, "").strip()
        if not tenant or not actor:
            raise unauthorized("authenticated principal headers are required")
        if not is_safe_id(tenant):
            raise unauthorized("authenticated tenant id is not a valid id")
        if len(actor) > MAX_ACTOR_CHARS or not actor.isprintable():
            raise unauthorized("authenticated actor id is not valid")
        raw_roles = request.headers.get(self.roles_header, "")
        if len(raw_roles) > MAX_ROLES_CHARS or not raw_roles.isprintable():
            raise unauthorized("authenticated roles header is not valid")
        roles: list[str] = []
        for role in raw_roles.split(","):
            role = role.strip()
            if role and role not in roles:
                roles.append(role)
        if len(roles) > MAX_ROLES:
            raise unauthorized("too many authenticated roles")
        return Principal(tenant_id=tenant, actor_id=actor, roles=roles)
