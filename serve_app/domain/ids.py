"""Identifiers: random, lowercase hex, with the contract's prefixes."""

from __future__ import annotations

import re
import secrets

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def new_session_id() -> str:
    return f"session-{secrets.token_hex(8)}"


def new_invocation_id() -> str:
    return f"inv-{secrets.token_hex(8)}"


def new_artifact_id() -> str:
    return f"artifact-{secrets.token_hex(8)}"


def is_safe_id(value: str) -> bool:
    """True for ids that are safe as one path segment and as a Kubernetes label value prefix."""
    return bool(SAFE_ID.fullmatch(value)) and ".." not in value
