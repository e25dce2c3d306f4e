"""Settings in one place: one typed field per environment variable (contract §9, README's table,
which `scripts/gen_settings_doc.py` writes from this class).

`Settings()` reads the environment; `Settings(field=...)` overrides it — which is how the Serve
config file's `args:` reach the application (Serve builds them with `Settings.model_validate`,
which here reads the environment too). A value that does not parse, or is out of range, stops
start-up with `InvalidSettings`, whose message names the variable and the reason:
`VALKEY_TIMEOUT_SECONDS: must be a number ≥ 0.1, got '0.5x'`. `python -m serve_app.config`
checks the current environment that way and exits non-zero on a bad value.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.config import ExtraValues
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from serve_app import __version__

MAX_AUTH_HEADER_NAME = 128
GIT_SCHEMES = ("https", "http", "ssh", "git")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "critical")

# Secrets are read from each process's own environment and never travel with the settings
# (Serve pickles deployment arguments into its controller's state).
SECRET_VARIABLES = {
    "valkey_password": "VALKEY_PASSWORD",
    "auth_shared_token": "WORKSPACE_AUTH_SHARED_TOKEN",
}
# Variables whose empty value is a value (refused by their check), not "unset".
EMPTY_IS_A_VALUE = frozenset(
    {
        "WORKSPACE_AUTH_TOKEN_HEADER",
        "WORKSPACE_AUTH_TENANT_HEADER",
        "WORKSPACE_AUTH_ACTOR_HEADER",
        "WORKSPACE_AUTH_ROLES_HEADER",
    }
)


def split_list(value: Any) -> Any:
    """A list variable: items separated by `,` or `:`, blanks dropped."""
    if isinstance(value, str):
        return [item.strip() for item in value.replace(",", ":").split(":") if item.strip()]
    return value


def quota(value: Any) -> Any:
    """A quota: `0` is off, and so is a negative number (as in the original service)."""
    if isinstance(value, str):
        value = value.strip()
        if value.lstrip("-").isdigit():
            return max(int(value), 0)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    return value


PathList = Annotated[list[str], BeforeValidator(split_list)]
Quota = Annotated[int, BeforeValidator(quota), Field(ge=0)]


def variable(name: str, description: str, *, doc_default: str | None = None) -> dict[str, Any]:
    """The `Field` arguments naming a setting's environment variable (its validation alias)."""
    extra: dict[str, Any] = {"variable": name}
    if doc_default is not None:
        extra["doc_default"] = doc_default
    return {
        "validation_alias": name,
        "description": description,
        "json_schema_extra": extra,
    }


def quota_field(name: str, description: str) -> Any:
    """A quota's field: `0` (the default) or a negative value is off."""
    return Field(0, **variable(name, description, doc_default="`0` (off)"))


def variable_of(field: FieldInfo) -> str | None:
    """The environment variable of a field; None for `args:`-only settings."""
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        name = extra.get("variable")
        return name if isinstance(name, str) else None
    return None


class InvalidSettings(ValueError):
    """Settings that cannot start the service; one line per problem, each naming the variable."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    @classmethod
    def from_validation(cls, error: ValidationError) -> InvalidSettings:
        fields = Settings.model_fields
        by_key: dict[str, str] = {}
        for name, field in fields.items():
            by_key[name] = name
            if (var := variable_of(field)) is not None:
                by_key[var] = name
        problems: list[str] = []
        for detail in error.errors(include_url=False):
            key = str(detail["loc"][0]) if detail["loc"] else ""
            field_name = by_key.get(key)
            if field_name is None:
                if detail["type"] == "extra_forbidden":
                    problems.append(f"{key}: not a setting")
                else:
                    problems.append(_plain(detail["msg"]))
                continue
            field = fields[field_name]
            label = variable_of(field) or f"{field_name} (Serve config args)"
            problems.append(f"{label}: {_reason(field_name, field, detail)}")
        return cls(problems)


PARSE_ERRORS = {
    "int_parsing",
    "int_type",
    "int_from_float",
    "float_parsing",
    "float_type",
    "finite_number",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
}


def _plain(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _expectation(field: FieldInfo) -> str:
    """'a number ≥ 0.1', 'an integer from 1 to 65535', …: what a numeric field accepts."""
    kind = "an integer" if field.annotation is int else "a number"
    bounds: dict[str, Any] = {}
    for item in field.metadata:
        for bound in ("ge", "gt", "le", "lt"):
            if getattr(item, bound, None) is not None:
                bounds[bound] = getattr(item, bound)
    if "ge" in bounds and "le" in bounds:
        return f"{kind} from {bounds['ge']} to {bounds['le']}"
    parts = [kind]
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    parts += [f"{symbols[bound]} {value}" for bound, value in bounds.items()]
    return " ".join(parts)


def _reason(name: str, field: FieldInfo, detail: Any) -> str:
    secret = name in SECRET_VARIABLES
    got = "" if secret else f", got {detail['input']!r}"
    kind = detail["type"]
    if kind in PARSE_ERRORS:
        return f"must be {_expectation(field)}{got}"
    if kind == "bool_parsing":
        return f"must be one of 1/true/yes/on or 0/false/no/off{got}"
    if kind == "literal_error":
        return f"must be {detail['ctx']['expected']}{got}"
    if kind == "string_too_short":
        return "must not be empty"
    message = _plain(detail["msg"])
    if message.startswith("Input should be "):
        return f"must be {message.removeprefix('Input should be ')}{got}"
    return message


class RunnerBundle(BaseModel):
    """What a runner profile selects: the image, and where the pod runs and with what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(min_length=1)
    resources: dict[str, dict[str, str]] = Field(default_factory=dict)
    """`{"limits": {"nvidia.com/gpu": "1", "memory": "8Gi"}, "requests": {...}}`"""
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)


def runner_bundles(value: Any) -> Any:
    """`WORKSPACE_K8S_RUNNER_IMAGE_BUNDLES_JSON`: a JSON object of profile → image or → bundle;
    profiles lower-cased, blank ones dropped."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object: {exc.msg}") from None
    if not isinstance(value, Mapping):
        raise ValueError("must be a JSON object of profile → image or bundle")
    bundles: dict[str, Any] = {}
    for profile, bundle in value.items():
        key = str(profile).strip().lower()
        if key:
            bundles[key] = {"image": bundle} if isinstance(bundle, str) else bundle
    return bundles


class EnvironmentSource(PydanticBaseSettingsSource):
    """Each setting's own variable, exactly as named (no prefixes, no case folding, no JSON):
    surrounding blanks stripped, and an empty value treated as unset (except where empty is a
    value to refuse). Secrets are taken verbatim."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = variable_of(field)
        if name is None or name not in os.environ:
            return None, field_name, False
        raw = os.environ[name]
        if field_name in SECRET_VARIABLES:
            return raw, name, False
        value = raw.strip()
        if not value and name not in EMPTY_IS_A_VALUE:
            return None, name, False
        if get_origin(field.annotation) is list and not split_list(value):
            return None, name, False
        return value, name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                data[key] = value
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        populate_by_name=True,
        case_sensitive=True,
        validate_default=True,
    )

    # --- Workspaces and artifacts ---------------------------------------------------------------
    workspace_backend: Literal["local", "kubernetes"] = Field(
        "local",
        **variable(
            "WORKSPACE_BACKEND",
            "`local` (workspace directories under `WORKSPACE_ROOT`) or `kubernetes` (a runner "
            "pod per session, `WORKSPACE_K8S_*`)",
        ),
    )
    workspace_root: Path = Field(
        Path("/tmp/swe-workspaces"),
        **variable(
            "WORKSPACE_ROOT",
            "local workspaces root, shared by every executor replica",
            doc_default="`/tmp/swe-workspaces` (`make run`: `.data/workspaces`)",
        ),
    )
    artifact_root: Path = Field(
        Path("/tmp/swe-artifacts"),
        **variable(
            "ARTIFACT_ROOT",
            "invocation artifacts; the sweeper removes them an hour after their invocation "
            "record expires (`INVOCATION_STORE_TTL_SECONDS`)",
            doc_default="`/tmp/swe-artifacts` (`make run`: `.data/artifacts`)",
        ),
    )
    source_repo_roots: PathList = Field(
        default_factory=list,
        **variable(
            "WORKSPACE_SOURCE_REPO_ROOTS",
            "`:`-separated absolute server directories that `source_repo_path` may copy from, "
            "and a local `repo_url` (a path or `file://`) may clone from (`make run` allows `/`); "
            "never anything inside or above `WORKSPACE_ROOT` or `ARTIFACT_ROOT`, whatever the "
            "roots say",
            doc_default="empty (feature off)",
        ),
    )
    git_allowed_schemes: PathList = Field(
        default_factory=lambda: ["https"],
        **variable(
            "WORKSPACE_GIT_ALLOWED_SCHEMES",
            "`:`- or `,`-separated transports that `repo_url` clones and git remotes may use: "
            "`https`, `http`, `ssh`, `git`; local repositories go through "
            "`WORKSPACE_SOURCE_REPO_ROOTS`, `ext::` and other `<transport>::` addresses never",
        ),
    )
    session_max_ttl_seconds: int = Field(
        7 * 86400,
        ge=60,
        **variable("WORKSPACE_SESSION_MAX_TTL_SECONDS", "longest `expires_in_seconds` accepted"),
    )
    sweep_interval_seconds: float = Field(
        30,
        gt=0,
        **variable(
            "WORKSPACE_SWEEP_INTERVAL_SECONDS",
            "how often expired sessions' workspaces are removed (fractions allowed)",
        ),
    )
    clone_timeout_seconds: int = Field(
        300, ge=1, **variable("WORKSPACE_CLONE_TIMEOUT_SECONDS", "`repo_url` clone limit")
    )

    # --- Kubernetes backend and k8s.* tools ------------------------------------------------------
    kubeconfig: str = Field(
        "",
        **variable(
            "KUBECONFIG",
            "kubeconfig path for the Kubernetes API; unset: `~/.kube/config`, then the pod's "
            "in-cluster service account",
        ),
    )
    k8s_namespace: str = Field(
        "swe-ai-fleet",
        min_length=1,
        max_length=63,
        **variable("WORKSPACE_K8S_NAMESPACE", "runner pods, and the k8s.* tools' default"),
    )
    k8s_service_account: str = Field(
        "", **variable("WORKSPACE_K8S_SERVICE_ACCOUNT", "service account of runner pods")
    )
    k8s_runner_image: str = Field(
        "docker.io/library/alpine:3.20",
        min_length=1,
        **variable("WORKSPACE_K8S_RUNNER_IMAGE", "runner image when no profile is asked for"),
    )
    k8s_runner_image_bundles: dict[str, RunnerBundle] = Field(
        default_factory=dict,
        **variable(
            "WORKSPACE_K8S_RUNNER_IMAGE_BUNDLES_JSON",
            "JSON object profile → image, or → `{image, resources, node_selector, "
            "tolerations}` (e.g. a `gpu` profile with `nvidia.com/gpu: 1`); keys lower-cased",
            doc_default="none",
        ),
    )
    k8s_runner_profile_metadata_key: str = Field(
        "runner_profile",
        min_length=1,
        **variable(
            "WORKSPACE_K8S_RUNNER_PROFILE_METADATA_KEY", "session metadata key naming the bundle"
        ),
    )
    k8s_init_image: str = Field(
        "docker.io/alpine/git:2.45.2",
        min_length=1,
        **variable("WORKSPACE_K8S_INIT_IMAGE", "image of the init container that clones"),
    )
    k8s_workdir: str = Field(
        "/workspace/repo",
        pattern=r"^/workspace/[A-Za-z0-9._/-]+$",
        **variable("WORKSPACE_K8S_WORKDIR", "the repository's directory in the runner pod"),
    )
    k8s_container: str = Field(
        "runner",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        **variable("WORKSPACE_K8S_CONTAINER", "runner container name"),
    )
    k8s_pod_prefix: str = Field(
        "ws",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$",
        **variable("WORKSPACE_K8S_POD_PREFIX", "runner pod name prefix"),
    )
    k8s_ready_timeout_seconds: float = Field(
        120,
        gt=0,
        **variable(
            "WORKSPACE_K8S_READY_TIMEOUT_SECONDS", "how long a runner pod may take to be Ready"
        ),
    )
    k8s_git_auth_secret: str = Field(
        "", **variable("WORKSPACE_K8S_GIT_AUTH_SECRET", "default git credentials Secret")
    )
    k8s_git_auth_metadata_key: str = Field(
        "git_auth_secret",
        min_length=1,
        **variable("WORKSPACE_K8S_GIT_AUTH_METADATA_KEY", "session metadata key naming the Secret"),
    )
    k8s_run_as_user: int = Field(
        1000, ge=1, **variable("WORKSPACE_K8S_RUN_AS_USER", "runner pod uid (never root)")
    )
    k8s_run_as_group: int = Field(
        1000, ge=1, **variable("WORKSPACE_K8S_RUN_AS_GROUP", "runner pod gid")
    )
    k8s_fs_group: int = Field(
        1000, ge=1, **variable("WORKSPACE_K8S_FS_GROUP", "runner pod fsGroup")
    )
    k8s_read_only_root_fs: bool = Field(
        False, **variable("WORKSPACE_K8S_READ_ONLY_ROOT_FS", "runner container read-only root")
    )
    k8s_automount_sa_token: bool = Field(
        False,
        **variable("WORKSPACE_K8S_AUTOMOUNT_SA_TOKEN", "mount the SA token into runner pods"),
    )
    k8s_pod_janitor_enabled: bool = Field(
        True, **variable("WORKSPACE_K8S_POD_JANITOR_ENABLED", "run the pod janitor")
    )
    k8s_pod_janitor_interval_seconds: float = Field(
        60, gt=0, **variable("WORKSPACE_K8S_POD_JANITOR_INTERVAL_SECONDS", "janitor sweep interval")
    )
    k8s_session_pod_terminal_ttl_seconds: float = Field(
        300,
        ge=0,
        **variable(
            "WORKSPACE_K8S_SESSION_POD_TERMINAL_TTL_SECONDS", "how long an ended runner pod stays"
        ),
    )
    k8s_container_pod_terminal_ttl_seconds: float = Field(
        300,
        ge=0,
        **variable(
            "WORKSPACE_K8S_CONTAINER_POD_TERMINAL_TTL_SECONDS",
            "how long an ended container-run pod stays",
        ),
    )
    k8s_missing_session_grace_seconds: float = Field(
        120,
        ge=0,
        **variable(
            "WORKSPACE_K8S_MISSING_SESSION_GRACE_SECONDS",
            "how old a pod without a session must be before the janitor deletes it",
        ),
    )
    enable_k8s_delivery_tools: bool = Field(
        False,
        **variable(
            "WORKSPACE_ENABLE_K8S_DELIVERY_TOOLS",
            "offer k8s.apply_manifest, k8s.rollout_status and k8s.restart_deployment",
        ),
    )

    # --- Invocation records -----------------------------------------------------------------------
    invocation_store_ttl_seconds: int = Field(
        86400,
        ge=0,
        **variable(
            "INVOCATION_STORE_TTL_SECONDS",
            "how long invocation records are kept (`0`: no expiry)",
        ),
    )
    invocation_store_max_records: int = Field(
        100_000,
        ge=1,
        **variable("INVOCATION_STORE_MAX_RECORDS", "in-memory store cap; the oldest go first"),
    )
    invocation_lease_seconds: int = Field(
        30,
        ge=1,
        **variable(
            "WORKSPACE_INVOCATION_LEASE_SECONDS",
            "a replica renews the lease of each invocation it runs every third of this; when "
            "its replica dies, the sweeper ends the invocation `failed` (`unavailable`, "
            "retryable) once the lease has run out (within about this plus three "
            "`WORKSPACE_SWEEP_INTERVAL_SECONDS`: the dead replica's sweeper lease must lapse too)",
        ),
    )
    invocation_store_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1024 * 1024,
        **variable(
            "INVOCATION_STORE_MAX_BYTES",
            "in-memory store cap in bytes of kept records (outputs over "
            "`WORKSPACE_INLINE_OUTPUT_MAX_BYTES` are kept only in their artifacts, as with "
            "Valkey); the oldest go first; at least 1 MiB. With Valkey, size `maxmemory` for "
            "the records a TTL keeps: at most about 2 times "
            "`WORKSPACE_INLINE_OUTPUT_MAX_BYTES` per invocation (output and logs), times the "
            "invocations per `INVOCATION_STORE_TTL_SECONDS`",
            doc_default="`268435456` (256 MiB)",
        ),
    )
    executor_threads: int = Field(
        64,
        ge=1,
        **variable("WORKSPACE_EXECUTOR_THREADS", "threads per executor replica for file tools"),
    )

    # --- Stores -----------------------------------------------------------------------------------
    session_store_backend: Literal["memory", "valkey"] = Field(
        "memory",
        **variable(
            "SESSION_STORE_BACKEND",
            "`memory` or `valkey` (`make run VALKEY_ADDR=…` sets both backends to `valkey`)",
        ),
    )
    invocation_store_backend: Literal["memory", "valkey"] = Field(
        "memory", **variable("INVOCATION_STORE_BACKEND", "`memory` or `valkey`")
    )
    valkey_addr: str = Field(
        "",
        **variable(
            "VALKEY_ADDR",
            "`host:port` (`[v6addr]:port`); wins over `VALKEY_HOST` and `VALKEY_PORT`",
            doc_default="—",
        ),
    )
    valkey_host: str = Field(
        "valkey.swe-ai-fleet.svc.cluster.local",
        min_length=1,
        **variable("VALKEY_HOST", "Valkey host when `VALKEY_ADDR` is unset"),
    )
    valkey_port: int = Field(
        6379,
        ge=1,
        le=65535,
        **variable("VALKEY_PORT", "Valkey port when `VALKEY_ADDR` is unset"),
    )
    valkey_db: int = Field(0, ge=0, **variable("VALKEY_DB", "database index"))
    valkey_password: SecretStr = Field(
        SecretStr(""),
        **variable(
            "VALKEY_PASSWORD",
            "AUTH password; read from each replica's own environment, never passed along",
            doc_default="—",
        ),
    )
    valkey_timeout_seconds: float = Field(
        2,
        ge=0.1,
        **variable(
            "VALKEY_TIMEOUT_SECONDS",
            "connect and command timeout (fractions allowed): how long an outage takes to "
            "become a 503",
        ),
    )
    session_store_key_prefix: str = Field(
        "workspace:session",
        min_length=1,
        **variable("SESSION_STORE_KEY_PREFIX", "Valkey keys of sessions"),
    )
    invocation_store_key_prefix: str = Field(
        "workspace:invocation",
        min_length=1,
        **variable("INVOCATION_STORE_KEY_PREFIX", "Valkey keys of invocations"),
    )
    inline_output_max_bytes: int = Field(
        256 * 1024,
        ge=0,
        **variable(
            "WORKSPACE_INLINE_OUTPUT_MAX_BYTES",
            "output/logs larger than this are kept only in their artifact files (Valkey and "
            "in-memory stores alike)",
        ),
    )

    # --- Build info and logs ----------------------------------------------------------------------
    version: str = Field(
        __version__,
        min_length=1,
        **variable(
            "WORKSPACE_VERSION",
            "`workspace_build_info{version}`, trace resource `service.version`",
            doc_default=f"`{__version__}` (the package version)",
        ),
    )
    log_level: str = Field(
        "info",
        **variable("LOG_LEVEL", "`debug`, `info`, `warn`, `error` (or `warning`, `critical`)"),
    )

    # --- Sandbox ----------------------------------------------------------------------------------
    sandbox: Literal["bubblewrap", "none"] = Field(
        "bubblewrap",
        **variable(
            "WORKSPACE_SANDBOX",
            "`bubblewrap`: every tool process in a per-call sandbox (`docs/SECURITY.md`); the "
            "service refuses to start if it cannot make one. `none`: tools run unsandboxed as "
            "the service's user — development only, never shared use. Shown as "
            "`workspace_build_info{sandbox}`",
        ),
    )
    sandbox_toolchain_dirs: PathList = Field(
        default_factory=list,
        **variable(
            "WORKSPACE_SANDBOX_TOOLCHAIN_DIRS",
            "`:`- or `,`-separated absolute directories mounted read-only in the sandbox; "
            "unset: every `PATH` directory outside `/usr` & co. (a virtual environment's or "
            "conda prefix's whole tree for its `bin`), plus `RUSTUP_HOME`, `GOROOT`, "
            "`JAVA_HOME`, `PYENV_ROOT`",
            doc_default="derived",
        ),
    )
    sandbox_max_memory_mb: int = Field(
        8192,
        ge=0,
        **variable(
            "WORKSPACE_SANDBOX_MAX_MEMORY_MB",
            "per tool process: data segment (`RLIMIT_DATA`); `0` leaves it as inherited (so do "
            "the four below)",
        ),
    )
    sandbox_max_processes: int = Field(
        512,
        ge=0,
        **variable(
            "WORKSPACE_SANDBOX_MAX_PROCESSES",
            "processes and threads per sandbox (`RLIMIT_NPROC`; a pids cgroup per call when the "
            "service runs as root)",
        ),
    )
    sandbox_max_file_size_mb: int = Field(
        1024,
        ge=0,
        **variable("WORKSPACE_SANDBOX_MAX_FILE_SIZE_MB", "largest file a tool process may write"),
    )
    sandbox_max_cpu_seconds: int = Field(
        900, ge=0, **variable("WORKSPACE_SANDBOX_MAX_CPU_SECONDS", "CPU time per tool process")
    )
    sandbox_max_open_files: int = Field(
        4096, ge=0, **variable("WORKSPACE_SANDBOX_MAX_OPEN_FILES", "open files per tool process")
    )

    # --- Authentication ---------------------------------------------------------------------------
    auth_mode: Literal["payload", "trusted_headers"] = Field(
        "payload",
        **variable(
            "WORKSPACE_AUTH_MODE",
            "`payload` (identity from the body, no checks) or `trusted_headers`",
        ),
    )
    auth_shared_token: SecretStr = Field(
        SecretStr(""),
        **variable(
            "WORKSPACE_AUTH_SHARED_TOKEN",
            "required for `trusted_headers`; read from each replica's own environment, never "
            "passed along",
            doc_default="—",
        ),
    )
    auth_token_header: str = Field(
        "X-Workspace-Auth-Token",
        **variable("WORKSPACE_AUTH_TOKEN_HEADER", "header carrying the shared token"),
    )
    auth_tenant_header: str = Field(
        "X-Workspace-Tenant-Id",
        **variable("WORKSPACE_AUTH_TENANT_HEADER", "header carrying the tenant"),
    )
    auth_actor_header: str = Field(
        "X-Workspace-Actor-Id",
        **variable("WORKSPACE_AUTH_ACTOR_HEADER", "header carrying the actor"),
    )
    auth_roles_header: str = Field(
        "X-Workspace-Roles",
        **variable("WORKSPACE_AUTH_ROLES_HEADER", "header carrying the comma-separated roles"),
    )

    # --- Quotas (0: off; a negative value is off too) ---------------------------------------------
    rate_limit_per_minute: Quota = quota_field(
        "WORKSPACE_RATE_LIMIT_PER_MINUTE", "invocations per session per wall-clock minute"
    )
    rate_limit_per_minute_per_principal: Quota = quota_field(
        "WORKSPACE_RATE_LIMIT_PER_MINUTE_PER_PRINCIPAL", "invocations per tenant+actor per minute"
    )
    max_concurrency_per_session: Quota = quota_field(
        "WORKSPACE_MAX_CONCURRENCY_PER_SESSION", "invocations in flight per session"
    )
    max_output_bytes_per_invocation: Quota = quota_field(
        "WORKSPACE_MAX_OUTPUT_BYTES_PER_INVOCATION", "JSON size of a tool's output"
    )
    max_artifacts_per_invocation: Quota = quota_field(
        "WORKSPACE_MAX_ARTIFACTS_PER_INVOCATION", "tool artifacts (the two automatic ones excluded)"
    )
    max_artifact_bytes_per_invocation: Quota = quota_field(
        "WORKSPACE_MAX_ARTIFACT_BYTES_PER_INVOCATION",
        "total bytes of tool artifacts (the two automatic ones excluded)",
    )
    max_sessions_per_tenant: Quota = quota_field(
        "WORKSPACE_MAX_SESSIONS_PER_TENANT", "live sessions per tenant"
    )
    quota_key_prefix: str = Field(
        "workspace:quota",
        min_length=1,
        **variable("WORKSPACE_QUOTA_KEY_PREFIX", "Valkey keys of the quota counters"),
    )

    # --- Tracing, metrics, audit ------------------------------------------------------------------
    otel_enabled: bool = Field(
        False,
        **variable(
            "WORKSPACE_OTEL_ENABLED",
            "OTLP/HTTP trace export (`docs/OBSERVABILITY.md`)",
        ),
    )
    otel_endpoint: str = Field(
        "",
        **variable(
            "WORKSPACE_OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector `host:port` or URL",
            doc_default="— (`localhost:4318`)",
        ),
    )
    otel_insecure: bool = Field(
        False, **variable("WORKSPACE_OTEL_EXPORTER_OTLP_INSECURE", "plain HTTP export")
    )
    otel_sampling_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        **variable("WORKSPACE_OTEL_SAMPLING_RATIO", "head sampling ratio"),
    )
    otel_export_delay_ms: int = Field(
        2000, ge=10, **variable("WORKSPACE_OTEL_EXPORT_DELAY_MS", "batch export interval")
    )
    environment: str = Field(
        "unknown",
        **variable("WORKSPACE_ENV", "trace resource `deployment.environment`"),
    )
    metrics_key_prefix: str = Field(
        "workspace:metrics",
        min_length=1,
        **variable("WORKSPACE_METRICS_KEY_PREFIX", "application-wide counters in Valkey"),
    )
    audit_key_prefix: str = Field(
        "workspace:audit",
        min_length=1,
        **variable("WORKSPACE_AUDIT_KEY_PREFIX", "per-session audit streams in Valkey"),
    )
    audit_max_records_per_session: int = Field(
        10_000,
        ge=1,
        **variable("WORKSPACE_AUDIT_MAX_RECORDS_PER_SESSION", "audit stream cap per session"),
    )

    # --- Serve config `args:` only (no environment variable) --------------------------------------
    session_default_ttl_seconds: int = Field(
        3600,
        ge=60,
        description="session lifetime when `expires_in_seconds` is not given",
    )
    extra_tool_families: list[str] = Field(
        default_factory=list,
        description="extra tool families to load, as `package.module:NAME` (tests, benchmarks)",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise InvalidSettings.from_validation(error) from None

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Serve builds `build_app`'s argument with this: the `args:` mapping, then the
        environment for everything it does not name (as `Settings(**args)`)."""
        if isinstance(obj, Mapping):
            return cls(**obj)
        return super().model_validate(
            obj,
            strict=strict,
            extra=extra,
            from_attributes=from_attributes,
            context=context,
            by_alias=by_alias,
            by_name=by_name,
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, EnvironmentSource(settings_cls)

    @field_validator("k8s_runner_image_bundles", mode="before")
    @classmethod
    def _bundles(cls, value: Any) -> Any:
        return runner_bundles(value)

    @field_validator("workspace_root", "artifact_root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("git_allowed_schemes")
    @classmethod
    def _known_schemes(cls, value: list[str]) -> list[str]:
        schemes = [scheme.strip().lower() for scheme in value if scheme.strip()]
        unknown = sorted(set(schemes) - set(GIT_SCHEMES))
        if unknown:
            raise ValueError(
                f"takes https, http, ssh and git, not {unknown} "
                "(local repositories are allowed through WORKSPACE_SOURCE_REPO_ROOTS)"
            )
        return schemes

    @field_validator("sandbox_toolchain_dirs", "source_repo_roots")
    @classmethod
    def _absolute_dirs(cls, value: list[str]) -> list[str]:
        for directory in value:
            if not os.path.isabs(directory):
                raise ValueError(f"directories must be absolute, got {directory!r}")
        return value

    @field_validator("valkey_addr")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value:
            split_address(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    @field_validator(
        "auth_token_header", "auth_tenant_header", "auth_actor_header", "auth_roles_header"
    )
    @classmethod
    def _header_name(cls, value: str) -> str:
        if (
            not value
            or len(value) > MAX_AUTH_HEADER_NAME
            or not value.isascii()
            or not value.isprintable()
            or " " in value
            or ":" in value
        ):
            raise ValueError(
                "must be a non-empty ASCII header name without spaces or colons (at most "
                f"{MAX_AUTH_HEADER_NAME} characters), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.auth_mode == "trusted_headers" and not self.auth_shared_token.get_secret_value():
            raise ValueError(
                "WORKSPACE_AUTH_MODE=trusted_headers requires WORKSPACE_AUTH_SHARED_TOKEN"
            )
        if self.session_max_ttl_seconds < self.session_default_ttl_seconds:
            raise ValueError(
                "WORKSPACE_SESSION_MAX_TTL_SECONDS: must be at least the default session "
                f"lifetime ({self.session_default_ttl_seconds} s), got "
                f"{self.session_max_ttl_seconds}"
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
        for name, var in SECRET_VARIABLES.items():
            self.__dict__[name] = SecretStr(os.environ.get(var, ""))

    @property
    def uses_valkey(self) -> bool:
        return "valkey" in (self.session_store_backend, self.invocation_store_backend)

    @property
    def valkey_address(self) -> tuple[str, int]:
        """`VALKEY_ADDR` (host:port) wins over `VALKEY_HOST`/`VALKEY_PORT`."""
        if self.valkey_addr:
            return split_address(self.valkey_addr)
        return self.valkey_host, self.valkey_port

    def summary(self) -> dict[str, Any]:
        """Settings for logs: secrets appear masked."""
        return self.model_dump(mode="json")


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6addr]:port`), the port 1..65535."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be host:port with a port from 1 to 65535, got {address!r}")
    return host, int(port)


def variables() -> dict[str, str]:
    """Each documented environment variable and the field it sets."""
    return {
        name: field_name
        for field_name, field in Settings.model_fields.items()
        if (name := variable_of(field)) is not None
    }


def serve_config_args(path: str) -> dict[str, dict[str, Any]]:
    """Each application's `args:` in a Serve config file."""
    import yaml

    with open(path, encoding="utf-8") as file:
        config = yaml.safe_load(file) or {}
    return {
        str(application.get("name", "default")): dict(application.get("args") or {})
        for application in config.get("applications", [])
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m serve_app.config [SERVE_CONFIG.yaml]`: build the settings from this environment
    (and each application's `args:` in the Serve config file, if given) as start-up would; on a
    bad value print the reasons and exit 1."""
    paths = list(sys.argv[1:] if argv is None else argv)
    if len(paths) > 1 or any(path.startswith("-") for path in paths):
        sys.stderr.write("usage: python -m serve_app.config [SERVE_CONFIG.yaml]\n")
        return 2
    try:
        applications = serve_config_args(paths[0]) if paths else {"": {}}
    except (OSError, ValueError) as error:
        sys.stderr.write(f"invalid settings: cannot read {paths[0]}: {error}\n")
        return 1
    failed = False
    for name, args in applications.items():
        try:
            Settings(**args)
        except InvalidSettings as error:
            where = f" (application {name!r} of {paths[0]})" if paths else ""
            lines = "".join(f"  {problem}\n" for problem in error.problems)
            sys.stderr.write(f"invalid settings{where}:\n{lines}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
