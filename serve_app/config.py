"""Settings in one place. Every field defaults to its environment variable (contract §9), so
`Settings()` reads the environment and `Settings(field=...)` overrides it — which is how the
Serve config file's `args:` reach the application."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from serve_app import __version__

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def env_str(name: str, default: str) -> Callable[[], str]:
    return lambda: os.environ.get(name, "").strip() or default


def env_int(name: str, default: int) -> Callable[[], int]:
    def read() -> int:
        try:
            return int(os.environ.get(name, "").strip())
        except ValueError:
            return default

    return read


def env_bool(name: str, default: bool) -> Callable[[], bool]:
    def read() -> bool:
        value = os.environ.get(name, "").strip().lower()
        if value in TRUE_WORDS:
            return True
        if value in FALSE_WORDS:
            return False
        return default

    return read


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "").strip())
    except ValueError:
        return default


def env_list(name: str) -> Callable[[], list[str]]:
    def read() -> list[str]:
        raw = os.environ.get(name, "")
        return [item.strip() for item in raw.replace(",", ":").split(":") if item.strip()]

    return read


def env_raw(name: str, default: str) -> Callable[[], str]:
    """The variable as set, even when set empty (so that an empty value can be refused)."""
    return lambda: os.environ[name].strip() if name in os.environ else default


def env_quota(name: str) -> Callable[[], int]:
    """A quota: unset or unparsable is 0 (off); negative values are 0 too."""

    def read() -> int:
        return max(env_int(name, 0)(), 0)

    return read


# Secrets are read from each process's own environment and never travel with the settings
# (Serve pickles deployment arguments into its controller's state).
SECRET_VARIABLES = {
    "valkey_password": "VALKEY_PASSWORD",
    "auth_shared_token": "WORKSPACE_AUTH_SHARED_TOKEN",
}
MAX_AUTH_HEADER_NAME = 128


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    workspace_backend: Literal["local"] = Field(
        default_factory=env_str("WORKSPACE_BACKEND", "local")  # type: ignore[arg-type]
    )
    workspace_root: Path = Field(
        default_factory=lambda: Path(env_str("WORKSPACE_ROOT", "/tmp/swe-workspaces")())
    )
    artifact_root: Path = Field(
        default_factory=lambda: Path(env_str("ARTIFACT_ROOT", "/tmp/swe-artifacts")())
    )
    session_store_backend: Literal["memory", "valkey"] = Field(
        default_factory=env_str("SESSION_STORE_BACKEND", "memory")  # type: ignore[arg-type]
    )
    invocation_store_backend: Literal["memory", "valkey"] = Field(
        default_factory=env_str("INVOCATION_STORE_BACKEND", "memory")  # type: ignore[arg-type]
    )
    session_store_key_prefix: str = Field(
        default_factory=env_str("SESSION_STORE_KEY_PREFIX", "workspace:session")
    )
    session_store_ttl_seconds: int = Field(
        default_factory=env_int("SESSION_STORE_TTL_SECONDS", 86400), ge=1
    )
    invocation_store_key_prefix: str = Field(
        default_factory=env_str("INVOCATION_STORE_KEY_PREFIX", "workspace:invocation")
    )
    valkey_addr: str = Field(default_factory=env_str("VALKEY_ADDR", ""))
    valkey_host: str = Field(
        default_factory=env_str("VALKEY_HOST", "valkey.swe-ai-fleet.svc.cluster.local")
    )
    valkey_port: int = Field(default_factory=env_int("VALKEY_PORT", 6379), ge=1, le=65535)
    valkey_db: int = Field(default_factory=env_int("VALKEY_DB", 0), ge=0)
    valkey_password: SecretStr = Field(
        default_factory=lambda: SecretStr(os.environ.get("VALKEY_PASSWORD", ""))
    )
    valkey_timeout_seconds: float = Field(
        default_factory=env_int("VALKEY_TIMEOUT_SECONDS", 2), gt=0
    )
    inline_output_max_bytes: int = Field(
        default_factory=env_int("WORKSPACE_INLINE_OUTPUT_MAX_BYTES", 256 * 1024), ge=0
    )
    invocation_store_ttl_seconds: int = Field(
        default_factory=env_int("INVOCATION_STORE_TTL_SECONDS", 86400), ge=0
    )
    invocation_store_max_records: int = Field(
        default_factory=env_int("INVOCATION_STORE_MAX_RECORDS", 100_000), ge=1
    )
    invocation_lease_seconds: int = Field(
        default_factory=env_int("WORKSPACE_INVOCATION_LEASE_SECONDS", 30), ge=1
    )
    invocation_store_max_bytes: int = Field(
        default_factory=env_int("INVOCATION_STORE_MAX_BYTES", 256 * 1024 * 1024), ge=1024 * 1024
    )
    auth_mode: Literal["payload", "trusted_headers"] = Field(
        default_factory=env_str("WORKSPACE_AUTH_MODE", "payload")  # type: ignore[arg-type]
    )
    auth_shared_token: SecretStr = Field(
        default_factory=lambda: SecretStr(os.environ.get("WORKSPACE_AUTH_SHARED_TOKEN", ""))
    )
    auth_token_header: str = Field(
        default_factory=env_raw("WORKSPACE_AUTH_TOKEN_HEADER", "X-Workspace-Auth-Token")
    )
    auth_tenant_header: str = Field(
        default_factory=env_raw("WORKSPACE_AUTH_TENANT_HEADER", "X-Workspace-Tenant-Id")
    )
    auth_actor_header: str = Field(
        default_factory=env_raw("WORKSPACE_AUTH_ACTOR_HEADER", "X-Workspace-Actor-Id")
    )
    auth_roles_header: str = Field(
        default_factory=env_raw("WORKSPACE_AUTH_ROLES_HEADER", "X-Workspace-Roles")
    )
    rate_limit_per_minute: int = Field(
        default_factory=env_quota("WORKSPACE_RATE_LIMIT_PER_MINUTE"), ge=0
    )
    rate_limit_per_minute_per_principal: int = Field(
        default_factory=env_quota("WORKSPACE_RATE_LIMIT_PER_MINUTE_PER_PRINCIPAL"), ge=0
    )
    max_concurrency_per_session: int = Field(
        default_factory=env_quota("WORKSPACE_MAX_CONCURRENCY_PER_SESSION"), ge=0
    )
    max_output_bytes_per_invocation: int = Field(
        default_factory=env_quota("WORKSPACE_MAX_OUTPUT_BYTES_PER_INVOCATION"), ge=0
    )
    max_artifacts_per_invocation: int = Field(
        default_factory=env_quota("WORKSPACE_MAX_ARTIFACTS_PER_INVOCATION"), ge=0
    )
    max_artifact_bytes_per_invocation: int = Field(
        default_factory=env_quota("WORKSPACE_MAX_ARTIFACT_BYTES_PER_INVOCATION"), ge=0
    )
    max_sessions_per_tenant: int = Field(
        default_factory=env_quota("WORKSPACE_MAX_SESSIONS_PER_TENANT"), ge=0
    )
    metrics_key_prefix: str = Field(
        default_factory=env_str("WORKSPACE_METRICS_KEY_PREFIX", "workspace:metrics")
    )
    audit_key_prefix: str = Field(
        default_factory=env_str("WORKSPACE_AUDIT_KEY_PREFIX", "workspace:audit")
    )
    audit_max_records_per_session: int = Field(
        default_factory=env_int("WORKSPACE_AUDIT_MAX_RECORDS_PER_SESSION", 10_000), ge=1
    )
    quota_key_prefix: str = Field(
        default_factory=env_str("WORKSPACE_QUOTA_KEY_PREFIX", "workspace:quota")
    )
    source_repo_roots: list[str] = Field(default_factory=env_list("WORKSPACE_SOURCE_REPO_ROOTS"))
    session_default_ttl_seconds: int = 3600
    session_max_ttl_seconds: int = Field(
        default_factory=env_int("WORKSPACE_SESSION_MAX_TTL_SECONDS", 7 * 86400), ge=60
    )
    clone_timeout_seconds: int = Field(
        default_factory=env_int("WORKSPACE_CLONE_TIMEOUT_SECONDS", 300), ge=1
    )
    sweep_interval_seconds: float = Field(
        default_factory=env_int("WORKSPACE_SWEEP_INTERVAL_SECONDS", 30), gt=0
    )
    extra_tool_families: list[str] = Field(
        default_factory=env_list("WORKSPACE_EXTRA_TOOL_FAMILIES")
    )
    sandbox: Literal["bubblewrap", "none"] = Field(
        default_factory=env_str("WORKSPACE_SANDBOX", "bubblewrap")  # type: ignore[arg-type]
    )
    git_allowed_schemes: list[str] = Field(
        default_factory=lambda: env_list("WORKSPACE_GIT_ALLOWED_SCHEMES")() or ["https"]
    )
    sandbox_toolchain_dirs: list[str] = Field(
        default_factory=env_list("WORKSPACE_SANDBOX_TOOLCHAIN_DIRS")
    )
    sandbox_max_memory_mb: int = Field(
        default_factory=env_int("WORKSPACE_SANDBOX_MAX_MEMORY_MB", 8192), ge=0
    )
    sandbox_max_processes: int = Field(
        default_factory=env_int("WORKSPACE_SANDBOX_MAX_PROCESSES", 512), ge=0
    )
    sandbox_max_file_size_mb: int = Field(
        default_factory=env_int("WORKSPACE_SANDBOX_MAX_FILE_SIZE_MB", 1024), ge=0
    )
    sandbox_max_cpu_seconds: int = Field(
        default_factory=env_int("WORKSPACE_SANDBOX_MAX_CPU_SECONDS", 900), ge=0
    )
    sandbox_max_open_files: int = Field(
        default_factory=env_int("WORKSPACE_SANDBOX_MAX_OPEN_FILES", 4096), ge=0
    )
    executor_threads: int = Field(default_factory=env_int("WORKSPACE_EXECUTOR_THREADS", 64), ge=1)
    version: str = Field(default_factory=env_str("WORKSPACE_VERSION", __version__))
    log_level: str = Field(default_factory=env_str("LOG_LEVEL", "info"))
    environment: str = Field(default_factory=env_str("WORKSPACE_ENV", "unknown"))
    otel_enabled: bool = Field(default_factory=env_bool("WORKSPACE_OTEL_ENABLED", False))
    otel_endpoint: str = Field(default_factory=env_str("WORKSPACE_OTEL_EXPORTER_OTLP_ENDPOINT", ""))
    otel_insecure: bool = Field(
        default_factory=env_bool("WORKSPACE_OTEL_EXPORTER_OTLP_INSECURE", False)
    )
    otel_sampling_ratio: float = Field(
        default_factory=lambda: _env_float("WORKSPACE_OTEL_SAMPLING_RATIO", 1.0), ge=0, le=1
    )
    otel_export_delay_ms: int = Field(
        default_factory=env_int("WORKSPACE_OTEL_EXPORT_DELAY_MS", 2000), ge=10
    )

    @field_validator("workspace_root", "artifact_root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("git_allowed_schemes")
    @classmethod
    def _known_schemes(cls, value: list[str]) -> list[str]:
        schemes = [scheme.strip().lower() for scheme in value if scheme.strip()]
        unknown = sorted(set(schemes) - {"https", "http", "ssh", "git"})
        if unknown:
            raise ValueError(
                f"WORKSPACE_GIT_ALLOWED_SCHEMES takes https, http, ssh and git, not {unknown} "
                "(local repositories are allowed through WORKSPACE_SOURCE_REPO_ROOTS)"
            )
        return schemes

    @field_validator("sandbox_toolchain_dirs")
    @classmethod
    def _absolute_toolchains(cls, value: list[str]) -> list[str]:
        for directory in value:
            if not os.path.isabs(directory):
                raise ValueError(f"sandbox toolchain directory must be absolute: {directory}")
        return value

    @field_validator("source_repo_roots")
    @classmethod
    def _absolute_roots(cls, value: list[str]) -> list[str]:
        for root in value:
            if not os.path.isabs(root):
                raise ValueError(f"source repo root must be absolute: {root}")
        return value

    @model_validator(mode="after")
    def _auth_is_complete(self) -> Settings:
        names = (
            self.auth_token_header,
            self.auth_tenant_header,
            self.auth_actor_header,
            self.auth_roles_header,
        )
        for name in names:
            if not name or len(name) > MAX_AUTH_HEADER_NAME or not name.isascii() or " " in name:
                raise ValueError(
                    "WORKSPACE_AUTH_*_HEADER names must be non-empty ASCII header names, "
                    f"got {name!r}"
                )
        if self.auth_mode == "trusted_headers" and not self.auth_shared_token.get_secret_value():
            raise ValueError(
                "WORKSPACE_AUTH_MODE=trusted_headers requires WORKSPACE_AUTH_SHARED_TOKEN"
            )
        return self

    def __getstate__(self) -> dict[Any, Any]:
        state: dict[Any, Any] = super().__getstate__()
        fields = dict(state["__dict__"])
        for name in SECRET_VARIABLES:
            fields[name] = SecretStr("")
        state["__dict__"] = fields
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        for name, variable in SECRET_VARIABLES.items():
            self.__dict__[name] = SecretStr(os.environ.get(variable, ""))

    @property
    def uses_valkey(self) -> bool:
        return "valkey" in (self.session_store_backend, self.invocation_store_backend)

    @property
    def valkey_address(self) -> tuple[str, int]:
        """`VALKEY_ADDR` (host:port) wins over `VALKEY_HOST`/`VALKEY_PORT`."""
        if self.valkey_addr:
            host, _, port = self.valkey_addr.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"VALKEY_ADDR must be host:port, got {self.valkey_addr!r}")
            return host.strip("[]"), int(port)
        return self.valkey_host, self.valkey_port

    def summary(self) -> dict[str, Any]:
        """Settings for logs: secrets appear masked."""
        return self.model_dump(mode="json")
