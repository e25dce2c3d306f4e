"""Validation of what a caller asks a session to be: principal, allowlist, metadata, repository.
Each function returns the cleaned value or raises `invalid_argument` with a message naming the
field; nothing is created before all of them pass."""

from __future__ import annotations

import re

from serve_app.domain.errors import invalid_argument
from serve_app.domain.ids import SAFE_ID, is_safe_id
from serve_app.domain.models import Principal
from serve_app.domain.paths import check_input, escapes, workspace_relative

MAX_METADATA_KEYS = 64
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_BYTES = 256 * 1024
MAX_ALLOWED_PATHS = 64
MAX_ROLES = 32
MAX_ROLE_CHARS = 64
MAX_REPO_URL_CHARS = 2048
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,254}$")


def validated_principal(principal: Principal) -> Principal:
    tenant = principal.tenant_id.strip()
    actor = principal.actor_id.strip()
    if not tenant:
        raise invalid_argument("principal.tenant_id is required")
    if not actor:
        raise invalid_argument("principal.actor_id is required")
    if not is_safe_id(tenant):
        raise invalid_argument(f"principal.tenant_id must match {SAFE_ID.pattern} without '..'")
    if len(actor) > 256 or any(ord(ch) < 32 for ch in actor):
        raise invalid_argument("principal.actor_id must be at most 256 printable characters")
    roles: list[str] = []
    for role in principal.roles:
        role = role.strip()
        if role and role not in roles:
            if len(role) > MAX_ROLE_CHARS:
                raise invalid_argument(f"a role is longer than {MAX_ROLE_CHARS} characters")
            roles.append(role)
    if len(roles) > MAX_ROLES:
        raise invalid_argument(f"principal.roles has more than {MAX_ROLES} entries")
    return Principal(tenant_id=tenant, actor_id=actor, roles=roles)


def validated_allowed_paths(paths: list[str] | None) -> list[str]:
    if not paths:
        return ["."]
    if len(paths) > MAX_ALLOWED_PATHS:
        raise invalid_argument(f"allowed_paths has more than {MAX_ALLOWED_PATHS} entries")
    cleaned: list[str] = []
    for path in paths:
        check_input(path)
        relative = workspace_relative(path.strip())
        if escapes(relative):
            raise invalid_argument(f"allowed_paths entry escapes the workspace: {path}")
        if relative not in cleaned:
            cleaned.append(relative)
    return cleaned


def validated_metadata(metadata: dict[str, str]) -> dict[str, str]:
    if len(metadata) > MAX_METADATA_KEYS:
        raise invalid_argument(f"metadata has more than {MAX_METADATA_KEYS} keys")
    size = 0
    for key, value in metadata.items():
        if not key or len(key) > MAX_METADATA_KEY_CHARS:
            raise invalid_argument(f"metadata keys must be 1..{MAX_METADATA_KEY_CHARS} characters")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_METADATA_BYTES:
        raise invalid_argument(f"metadata exceeds {MAX_METADATA_BYTES} bytes")
    return dict(metadata)


def validated_repo(url: str | None, ref: str | None) -> tuple[str | None, str | None]:
    url = (url or "").strip() or None
    ref = (ref or "").strip() or None
    if url is not None:
        if len(url) > MAX_REPO_URL_CHARS or url.startswith("-"):
            raise invalid_argument("repo_url is not a valid git URL")
        if any(ord(ch) < 32 or ch == " " for ch in url) or url.lower().startswith("ext::"):
            raise invalid_argument("repo_url is not a valid git URL")
    if ref is not None and (not _REF.fullmatch(ref) or ".." in ref):
        raise invalid_argument("repo_ref is not a valid git ref")
    return url, ref
