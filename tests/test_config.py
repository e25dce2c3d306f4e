"""Settings: each documented variable parsed into its typed field, bad values refused with the
variable's name and the reason, secrets kept out of pickles, the `python -m serve_app.config`
check, and README's table against the class."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from serve_app import __version__
from serve_app.config import InvalidSettings, RunnerBundle, Settings, variables

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GENERATOR = REPO / "scripts" / "gen_settings_doc.py"

# Each documented variable: a value that is not its default, and what it becomes.
EXAMPLES: dict[str, tuple[str, Any]] = {
    "WORKSPACE_BACKEND": ("kubernetes", "kubernetes"),
    "WORKSPACE_ROOT": ("/srv/ws", Path("/srv/ws")),
    "ARTIFACT_ROOT": ("/srv/artifacts", Path("/srv/artifacts")),
    "WORKSPACE_SOURCE_REPO_ROOTS": ("/srv/a:/srv/b,/srv/c", ["/srv/a", "/srv/b", "/srv/c"]),
    "WORKSPACE_GIT_ALLOWED_SCHEMES": ("HTTPS, ssh:git", ["https", "ssh", "git"]),
    "WORKSPACE_SESSION_MAX_TTL_SECONDS": ("7200", 7200),
    "WORKSPACE_SWEEP_INTERVAL_SECONDS": ("0.5", 0.5),
    "WORKSPACE_CLONE_TIMEOUT_SECONDS": ("60", 60),
    "KUBECONFIG": ("/etc/kube/config", "/etc/kube/config"),
    "WORKSPACE_K8S_NAMESPACE": ("runners", "runners"),
    "WORKSPACE_K8S_SERVICE_ACCOUNT": ("runner-sa", "runner-sa"),
    "WORKSPACE_K8S_RUNNER_IMAGE": ("registry.local/runner:1", "registry.local/runner:1"),
    "WORKSPACE_K8S_RUNNER_IMAGE_BUNDLES_JSON": (
        '{" Toolchains ": "registry.local/tc:1", "": "x", "gpu": {"image": "registry.local/cu:12",'
        ' "resources": {"limits": {"nvidia.com/gpu": "1"}}, "node_selector": {"gpu": "rtx3090"},'
        ' "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}}',
        {
            "toolchains": RunnerBundle(image="registry.local/tc:1"),
            "gpu": RunnerBundle(
                image="registry.local/cu:12",
                resources={"limits": {"nvidia.com/gpu": "1"}},
                node_selector={"gpu": "rtx3090"},
                tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}],
            ),
        },
    ),
    "WORKSPACE_K8S_RUNNER_PROFILE_METADATA_KEY": ("bundle", "bundle"),
    "WORKSPACE_K8S_INIT_IMAGE": ("registry.local/git:2", "registry.local/git:2"),
    "WORKSPACE_K8S_WORKDIR": ("/workspace/src", "/workspace/src"),
    "WORKSPACE_K8S_CONTAINER": ("main", "main"),
    "WORKSPACE_K8S_POD_PREFIX": ("wsp", "wsp"),
    "WORKSPACE_K8S_READY_TIMEOUT_SECONDS": ("2.5", 2.5),
    "WORKSPACE_K8S_GIT_AUTH_SECRET": ("git-creds", "git-creds"),
    "WORKSPACE_K8S_GIT_AUTH_METADATA_KEY": ("git_secret", "git_secret"),
    "WORKSPACE_K8S_RUN_AS_USER": ("2000", 2000),
    "WORKSPACE_K8S_RUN_AS_GROUP": ("2001", 2001),
    "WORKSPACE_K8S_FS_GROUP": ("2002", 2002),
    "WORKSPACE_K8S_READ_ONLY_ROOT_FS": ("true", True),
    "WORKSPACE_K8S_AUTOMOUNT_SA_TOKEN": ("1", True),
    "WORKSPACE_K8S_POD_JANITOR_ENABLED": ("off", False),
    "WORKSPACE_K8S_POD_JANITOR_INTERVAL_SECONDS": ("5", 5),
    "WORKSPACE_K8S_SESSION_POD_TERMINAL_TTL_SECONDS": ("30", 30),
    "WORKSPACE_K8S_CONTAINER_POD_TERMINAL_TTL_SECONDS": ("0", 0),
    "WORKSPACE_K8S_MISSING_SESSION_GRACE_SECONDS": ("10.5", 10.5),
    "WORKSPACE_ENABLE_K8S_DELIVERY_TOOLS": ("yes", True),
    "INVOCATION_STORE_TTL_SECONDS": ("0", 0),
    "INVOCATION_STORE_MAX_RECORDS": ("10", 10),
    "WORKSPACE_INVOCATION_LEASE_SECONDS": ("5", 5),
    "INVOCATION_STORE_MAX_BYTES": ("2097152", 2 * 1024 * 1024),
    "WORKSPACE_EXECUTOR_THREADS": ("8", 8),
    "SESSION_STORE_BACKEND": ("valkey", "valkey"),
    "INVOCATION_STORE_BACKEND": ("valkey", "valkey"),
    "VALKEY_ADDR": ("[::1]:6380", "[::1]:6380"),
    "VALKEY_HOST": ("valkey.local", "valkey.local"),
    "VALKEY_PORT": ("6390", 6390),
    "VALKEY_DB": ("3", 3),
    "VALKEY_PASSWORD": ("p@ss word", "p@ss word"),
    "VALKEY_TIMEOUT_SECONDS": ("0.5", 0.5),
    "SESSION_STORE_KEY_PREFIX": ("t:session", "t:session"),
    "INVOCATION_STORE_KEY_PREFIX": ("t:invocation", "t:invocation"),
    "WORKSPACE_INLINE_OUTPUT_MAX_BYTES": ("1024", 1024),
    "WORKSPACE_VERSION": ("1.2.3", "1.2.3"),
    "LOG_LEVEL": ("DEBUG", "debug"),
    "WORKSPACE_SANDBOX": ("none", "none"),
    "WORKSPACE_SANDBOX_TOOLCHAIN_DIRS": ("/opt/go,/opt/rust", ["/opt/go", "/opt/rust"]),
    "WORKSPACE_SANDBOX_MAX_MEMORY_MB": ("0", 0),
    "WORKSPACE_SANDBOX_MAX_PROCESSES": ("64", 64),
    "WORKSPACE_SANDBOX_MAX_FILE_SIZE_MB": ("1", 1),
    "WORKSPACE_SANDBOX_MAX_CPU_SECONDS": ("10", 10),
    "WORKSPACE_SANDBOX_MAX_OPEN_FILES": ("256", 256),
    "WORKSPACE_AUTH_MODE": ("trusted_headers", "trusted_headers"),
    "WORKSPACE_AUTH_SHARED_TOKEN": ("a-token-for-the-tests", "a-token-for-the-tests"),
    "WORKSPACE_AUTH_TOKEN_HEADER": ("X-Token", "X-Token"),
    "WORKSPACE_AUTH_TENANT_HEADER": ("X-Tenant", "X-Tenant"),
    "WORKSPACE_AUTH_ACTOR_HEADER": ("X-Actor", "X-Actor"),
    "WORKSPACE_AUTH_ROLES_HEADER": ("X-Roles", "X-Roles"),
    "WORKSPACE_RATE_LIMIT_PER_MINUTE": ("60", 60),
    "WORKSPACE_RATE_LIMIT_PER_MINUTE_PER_PRINCIPAL": ("120", 120),
    "WORKSPACE_MAX_CONCURRENCY_PER_SESSION": ("2", 2),
    "WORKSPACE_MAX_OUTPUT_BYTES_PER_INVOCATION": ("4096", 4096),
    "WORKSPACE_MAX_ARTIFACTS_PER_INVOCATION": ("3", 3),
    "WORKSPACE_MAX_ARTIFACT_BYTES_PER_INVOCATION": ("8192", 8192),
    "WORKSPACE_MAX_SESSIONS_PER_TENANT": ("5", 5),
    "WORKSPACE_QUOTA_KEY_PREFIX": ("t:quota", "t:quota"),
    "WORKSPACE_OTEL_ENABLED": ("yes", True),
    "WORKSPACE_OTEL_EXPORTER_OTLP_ENDPOINT": ("collector:4318", "collector:4318"),
    "WORKSPACE_OTEL_EXPORTER_OTLP_INSECURE": ("on", True),
    "WORKSPACE_OTEL_SAMPLING_RATIO": ("0.25", 0.25),
    "WORKSPACE_OTEL_EXPORT_DELAY_MS": ("100", 100),
    "WORKSPACE_ENV": ("staging", "staging"),
    "WORKSPACE_METRICS_KEY_PREFIX": ("t:metrics", "t:metrics"),
    "WORKSPACE_AUDIT_KEY_PREFIX": ("t:audit", "t:audit"),
    "WORKSPACE_AUDIT_MAX_RECORDS_PER_SESSION": ("100", 100),
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No documented variable set unless a test sets it."""
    for name in variables():
        monkeypatch.delenv(name, raising=False)


def value_of(settings: Settings, field: str) -> Any:
    value = getattr(settings, field)
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def invalid(**env: str) -> str:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with pytest.raises(InvalidSettings) as raised:
            Settings()
    return str(raised.value)


def test_every_documented_variable_has_an_example() -> None:
    assert set(EXAMPLES) == set(variables())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_variable_sets_its_field(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, expected = EXAMPLES[name]
    monkeypatch.setenv(name, raw)
    if name == "WORKSPACE_AUTH_MODE":
        monkeypatch.setenv("WORKSPACE_AUTH_SHARED_TOKEN", "token")
    field = variables()[name]
    default = value_of(Settings.model_construct(), field)
    assert expected != default, f"{name}'s example is its default"
    assert value_of(Settings(), field) == expected


def test_all_variables_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (raw, _) in EXAMPLES.items():
        monkeypatch.setenv(name, raw)
    settings = Settings()
    for name, (_, expected) in EXAMPLES.items():
        assert value_of(settings, variables()[name]) == expected, name


def test_defaults() -> None:
    settings = Settings()
    assert settings.valkey_timeout_seconds == 2
    assert settings.sweep_interval_seconds == 30
    assert settings.git_allowed_schemes == ["https"]
    assert settings.source_repo_roots == []
    assert settings.workspace_root == Path("/tmp/swe-workspaces")
    assert settings.valkey_address == ("valkey.swe-ai-fleet.svc.cluster.local", 6379)
    assert settings.version == __version__
    assert settings.session_default_ttl_seconds == 3600
    assert settings.rate_limit_per_minute == 0
    assert settings.otel_enabled is False


def test_fractional_seconds_stay_fractional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("WORKSPACE_SWEEP_INTERVAL_SECONDS", "2.5")
    settings = Settings()
    assert settings.valkey_timeout_seconds == 0.5
    assert settings.sweep_interval_seconds == 2.5


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"VALKEY_TIMEOUT_SECONDS": "0.5x"},
            "VALKEY_TIMEOUT_SECONDS: must be a number ≥ 0.1, got '0.5x'",
        ),
        ({"VALKEY_TIMEOUT_SECONDS": "0"}, "VALKEY_TIMEOUT_SECONDS: must be a number ≥ 0.1"),
        (
            {"WORKSPACE_SANDBOX_MAX_PROCESSES": "abc"},
            "WORKSPACE_SANDBOX_MAX_PROCESSES: must be an integer ≥ 0, got 'abc'",
        ),
        (
            {"WORKSPACE_RATE_LIMIT_PER_MINUTE": "ten"},
            "WORKSPACE_RATE_LIMIT_PER_MINUTE: must be an integer ≥ 0, got 'ten'",
        ),
        ({"VALKEY_PORT": "0"}, "VALKEY_PORT: must be an integer from 1 to 65535, got '0'"),
        ({"VALKEY_PORT": "65536"}, "VALKEY_PORT: must be an integer from 1 to 65535"),
        ({"VALKEY_DB": "-1"}, "VALKEY_DB: must be an integer ≥ 0, got '-1'"),
        (
            {"WORKSPACE_CLONE_TIMEOUT_SECONDS": "1.5"},
            "WORKSPACE_CLONE_TIMEOUT_SECONDS: must be an integer ≥ 1, got '1.5'",
        ),
        ({"WORKSPACE_SWEEP_INTERVAL_SECONDS": "0"}, "WORKSPACE_SWEEP_INTERVAL_SECONDS: must be"),
        ({"WORKSPACE_EXECUTOR_THREADS": "0"}, "WORKSPACE_EXECUTOR_THREADS: must be an integer ≥ 1"),
        ({"INVOCATION_STORE_MAX_BYTES": "1000"}, "INVOCATION_STORE_MAX_BYTES: must be an integer"),
        ({"WORKSPACE_OTEL_SAMPLING_RATIO": "2"}, "WORKSPACE_OTEL_SAMPLING_RATIO: must be a number"),
        (
            {"WORKSPACE_OTEL_ENABLED": "maybe"},
            "WORKSPACE_OTEL_ENABLED: must be one of 1/true/yes/on or 0/false/no/off, got 'maybe'",
        ),
        ({"SESSION_STORE_BACKEND": "redis"}, "SESSION_STORE_BACKEND: must be 'memory' or 'valkey'"),
        (
            {"WORKSPACE_BACKEND": "docker"},
            "WORKSPACE_BACKEND: must be 'local' or 'kubernetes', got 'docker'",
        ),
        (
            {"WORKSPACE_K8S_RUNNER_IMAGE_BUNDLES_JSON": "{not json"},
            "WORKSPACE_K8S_RUNNER_IMAGE_BUNDLES_JSON: must be a JSON object",
        ),
        (
            {"WORKSPACE_K8S_RUNNER_IMAGE_BUNDLES_JSON": '["alpine"]'},
            "WORKSPACE_K8S_RUNNER_IMAGE_BUNDLES_JSON: must be a JSON object",
        ),
        ({"WORKSPACE_K8S_RUN_AS_USER": "0"}, "WORKSPACE_K8S_RUN_AS_USER: must be an integer ≥ 1"),
        ({"WORKSPACE_K8S_POD_PREFIX": "WS_"}, "WORKSPACE_K8S_POD_PREFIX:"),
        ({"WORKSPACE_SANDBOX": "docker"}, "WORKSPACE_SANDBOX: must be 'bubblewrap' or 'none'"),
        ({"VALKEY_ADDR": "valkey"}, "VALKEY_ADDR: must be host:port"),
        ({"VALKEY_ADDR": "valkey:99999"}, "VALKEY_ADDR: must be host:port"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL: must be one of debug, info"),
        ({"WORKSPACE_GIT_ALLOWED_SCHEMES": "https:ftp"}, "WORKSPACE_GIT_ALLOWED_SCHEMES: takes"),
        ({"WORKSPACE_SOURCE_REPO_ROOTS": "relative"}, "WORKSPACE_SOURCE_REPO_ROOTS: directories"),
        ({"WORKSPACE_SANDBOX_TOOLCHAIN_DIRS": "bin"}, "WORKSPACE_SANDBOX_TOOLCHAIN_DIRS: direct"),
        ({"WORKSPACE_AUTH_TENANT_HEADER": ""}, "WORKSPACE_AUTH_TENANT_HEADER: must be a non-empty"),
        ({"WORKSPACE_AUTH_ROLES_HEADER": "X Roles"}, "WORKSPACE_AUTH_ROLES_HEADER: must be"),
        (
            {"WORKSPACE_SESSION_MAX_TTL_SECONDS": "600"},
            "WORKSPACE_SESSION_MAX_TTL_SECONDS: must be at least the default session lifetime",
        ),
        (
            {"WORKSPACE_AUTH_MODE": "trusted_headers"},
            "WORKSPACE_AUTH_MODE=trusted_headers requires WORKSPACE_AUTH_SHARED_TOKEN",
        ),
    ],
)
def test_bad_values_name_the_variable_and_the_reason(env: dict[str, str], message: str) -> None:
    assert message in invalid(**env)


def test_every_problem_is_reported() -> None:
    message = invalid(VALKEY_PORT="x", WORKSPACE_EXECUTOR_THREADS="y")
    assert sorted(message.splitlines()) == [
        "VALKEY_PORT: must be an integer from 1 to 65535, got 'x'",
        "WORKSPACE_EXECUTOR_THREADS: must be an integer ≥ 1, got 'y'",
    ]


def test_values_are_stripped_and_empty_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_EXECUTOR_THREADS", " 8 ")
    monkeypatch.setenv("VALKEY_TIMEOUT_SECONDS", "")
    monkeypatch.setenv("WORKSPACE_GIT_ALLOWED_SCHEMES", " , ")
    monkeypatch.setenv("LOG_LEVEL", "   ")
    settings = Settings()
    assert settings.executor_threads == 8
    assert settings.valkey_timeout_seconds == 2
    assert settings.git_allowed_schemes == ["https"]
    assert settings.log_level == "info"


@pytest.mark.parametrize("word", ["1", "true", "YES", "On"])
def test_true_words(word: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_OTEL_ENABLED", word)
    assert Settings().otel_enabled is True


@pytest.mark.parametrize("word", ["0", "false", "No", "OFF"])
def test_false_words(word: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_OTEL_EXPORTER_OTLP_INSECURE", word)
    assert Settings().otel_insecure is False


def test_a_negative_quota_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_MAX_SESSIONS_PER_TENANT", "-1")
    assert Settings().max_sessions_per_tenant == 0
    assert Settings(rate_limit_per_minute=-5).rate_limit_per_minute == 0


def test_valkey_addr_wins_over_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_HOST", "elsewhere")
    monkeypatch.setenv("VALKEY_ADDR", "[::1]:6380")
    assert Settings().valkey_address == ("::1", 6380)


def test_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_TIMEOUT_SECONDS", "not a number")
    monkeypatch.setenv("WORKSPACE_EXECUTOR_THREADS", "4")
    settings = Settings(valkey_timeout_seconds=1.5, source_repo_roots=["/"])
    assert settings.valkey_timeout_seconds == 1.5
    assert settings.executor_threads == 4
    assert settings.source_repo_roots == ["/"]


def test_bad_arguments_name_the_field_and_its_variable() -> None:
    with pytest.raises(InvalidSettings, match=r"^VALKEY_PORT: must be an integer from 1 to 65535"):
        Settings(valkey_port=0)
    with pytest.raises(InvalidSettings, match=r"^valkey_prot: not a setting$"):
        Settings(valkey_prot=6379)
    with pytest.raises(InvalidSettings, match=r"^session_default_ttl_seconds \(Serve config"):
        Settings(session_default_ttl_seconds=1)


def test_serve_builds_the_arguments_from_args_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Serve calls `Settings.model_validate(args)`: the environment fills in the rest."""
    monkeypatch.setenv("WORKSPACE_EXECUTOR_THREADS", "4")
    settings = Settings.model_validate({"source_repo_roots": ["/"]})
    assert (settings.executor_threads, settings.source_repo_roots) == (4, ["/"])
    monkeypatch.setenv("WORKSPACE_EXECUTOR_THREADS", "four")
    with pytest.raises(InvalidSettings, match="WORKSPACE_EXECUTOR_THREADS: must be an integer"):
        Settings.model_validate({})
    assert Settings.model_validate(settings) is settings


SECRET = "s3cr3t-valkey-password-for-the-test"
TOKEN = "s3cr3t-shared-token-for-the-test"


def test_secrets_stay_out_of_pickles_and_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_PASSWORD", SECRET)
    monkeypatch.setenv("WORKSPACE_AUTH_SHARED_TOKEN", TOKEN)
    settings = Settings(auth_mode="trusted_headers")
    data = pickle.dumps(settings)
    assert SECRET.encode() not in data and TOKEN.encode() not in data
    assert SECRET not in repr(settings) and SECRET not in str(settings.summary())
    # The receiving process reads its own environment.
    assert pickle.loads(data).valkey_password.get_secret_value() == SECRET
    monkeypatch.delenv("VALKEY_PASSWORD")
    assert pickle.loads(data).valkey_password.get_secret_value() == ""
    with pytest.raises(InvalidSettings) as raised:
        Settings(valkey_password=[SECRET])
    assert raised.value.problems[0].startswith("VALKEY_PASSWORD: ")
    assert SECRET not in str(raised.value)


def test_a_secret_is_taken_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_PASSWORD", f" {SECRET} ")
    assert Settings().valkey_password.get_secret_value() == f" {SECRET} "


def test_removed_variables_are_not_settings() -> None:
    assert "SESSION_STORE_TTL_SECONDS" not in variables()
    assert "WORKSPACE_EXTRA_TOOL_FAMILIES" not in variables()


def check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in variables()}
    return subprocess.run(
        [sys.executable, "-m", "serve_app.config", *args],
        capture_output=True,
        text=True,
        env={**environment, **env},
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_the_check_passes_the_local_config() -> None:
    result = check("ray_config/local.yaml", WORKSPACE_ROOT="/tmp/w", ARTIFACT_ROOT="/tmp/a")
    assert result.returncode == 0, result.stderr


def test_the_check_fails_with_the_reason() -> None:
    result = check("ray_config/local.yaml", WORKSPACE_SANDBOX_MAX_PROCESSES="abc")
    assert result.returncode == 1
    assert "WORKSPACE_SANDBOX_MAX_PROCESSES: must be an integer ≥ 0, got 'abc'" in result.stderr
    result = check(VALKEY_TIMEOUT_SECONDS="0.5x")
    assert result.returncode == 1
    assert "VALKEY_TIMEOUT_SECONDS: must be a number ≥ 0.1, got '0.5x'" in result.stderr


def test_the_check_reads_the_config_files_args(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "ray_config" / "local.yaml").read_text())
    config["applications"][0]["args"] = {"executor_threads": 0}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = check(str(path))
    assert result.returncode == 1
    assert "application 'workspace'" in result.stderr
    assert "WORKSPACE_EXECUTOR_THREADS: must be an integer ≥ 1, got 0" in result.stderr


def test_make_run_checks_the_settings_before_serving() -> None:
    result = subprocess.run(
        ["make", "-n", "run"], capture_output=True, text=True, cwd=REPO, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    checks = [i for i, line in enumerate(lines) if "-m serve_app.config" in line]
    serves = [i for i, line in enumerate(lines) if "scripts/serve_run.py" in line]
    assert checks and serves and checks[0] < serves[0], result.stdout
    assert not any(re.search(r"\bserve run\b", line) for line in lines)


# --- README's table ------------------------------------------------------------------------------


def readme_rows() -> dict[str, str]:
    """README's settings table: variable → its Default cell."""
    text = README.read_text()
    start = text.index("<!-- settings-table")
    end = text.index("<!-- /settings-table -->")
    rows = {}
    for line in text[start:end].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (match := re.fullmatch(r"`([A-Z0-9_]+)`", cells[0])):
            rows[match.group(1)] = cells[1]
    return rows


def test_readme_names_every_variable_and_no_other() -> None:
    assert set(readme_rows()) == set(variables())


def test_readme_shows_each_default() -> None:
    rows = readme_rows()
    for name, field_name in variables().items():
        default = value_of(Settings.model_construct(), field_name)
        if isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif isinstance(default, list):
            shown = f"`{','.join(default)}`" if default else ""
        elif isinstance(default, dict):
            shown = f"`{default}`" if default else ""
        else:
            shown = f"`{default}`" if default not in ("", None) else ""
        if shown:
            assert shown in rows[name], f"{name}: README says {rows[name]!r}, the class {shown}"
        else:
            assert not rows[name].startswith("`"), f"{name} has no default: {rows[name]!r}"


def test_readme_table_is_the_generated_one() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", str(README)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
