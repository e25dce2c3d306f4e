"""The sandbox's set-up: start-up checks and modes, the prepared /etc, limits and toolchain
directories. Real bubblewrap where one is started."""

from __future__ import annotations

import logging
import os
import resource
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.runtime.sandbox import (
    Mounts,
    PreparedEtc,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
    _private_dir,
    default_toolchain_dirs,
)
from serve_app.wiring import build_executor, build_sandbox, build_session_service


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(
        workspace_root=tmp_path / "workspaces", artifact_root=tmp_path / "artifacts", **values
    )


def test_a_missing_bwrap_stops_start_up_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SandboxUnavailable, match="install the `bubblewrap` package"):
        build_executor(settings(tmp_path, auth_mode="payload"))


def test_a_broken_bwrap_stops_start_up_with_its_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in `bwrap` that fails as one does where user namespaces are forbidden (it models
    only the exit status and the message, not bubblewrap)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("WORKSPACE_AUTH_SHARED_TOKEN", "t" * 32)
    trusted = settings(tmp_path, auth_mode="trusted_headers")
    with pytest.raises(SandboxUnavailable) as refused:
        build_session_service(trusted, build_executor(trusted))
    message = str(refused.value)
    assert "cannot start a sandbox" in message
    assert "No permissions to create new namespace" in message
    assert "unprivileged user namespaces" in message


def test_none_is_explicit_and_warns_at_every_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no bwrap needed without a sandbox
    chosen = settings(tmp_path, sandbox="none")
    with caplog.at_level(logging.WARNING, logger="serve_app.wiring"):
        build_sandbox(chosen)
        build_sandbox(chosen)
    warnings = [r.message for r in caplog.records if "WORKSPACE_SANDBOX=none" in r.message]
    assert len(warnings) == 2
    assert "unsandboxed" in warnings[0]


def test_the_default_is_bubblewrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WORKSPACE_SANDBOX", raising=False)
    assert settings(tmp_path).sandbox == "bubblewrap"
    monkeypatch.setenv("WORKSPACE_SANDBOX", "none")
    assert settings(tmp_path).sandbox == "none"


@pytest.mark.parametrize("mode", ["bubblewrap", "none"])
def test_the_mode_is_a_label_of_build_info(tmp_path: Path, mode: str) -> None:
    chosen = settings(tmp_path, sandbox="none")
    service = build_session_service(chosen, build_executor(chosen))
    client = TestClient(create_app(service, sandbox=mode))
    text = client.get("/metrics").text
    assert f'workspace_build_info{{sandbox="{mode}",version=' in text


def test_the_prepared_etc_holds_no_host_identity_or_secret() -> None:
    etc = PreparedEtc(Path("/etc")).get()
    names = set(os.listdir(etc))
    assert {"passwd", "group"} <= names
    assert not names & {"shadow", "gshadow", "sudoers", "ssh", "machine-id"}
    users = [line.split(":")[0] for line in (etc / "passwd").read_text().splitlines()]
    assert set(users) <= {"root", "tool", "nobody"}
    assert stat.S_IMODE(etc.stat().st_mode) == 0o755
    assert PreparedEtc(Path("/etc")).get() == etc  # one copy per content, shared


def test_a_planted_etc_directory_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "shared"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(SandboxUnavailable, match="not a private directory"):
        _private_dir(planted)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(SandboxUnavailable, match="not a private directory"):
        _private_dir(link)


def test_limits_never_ask_above_the_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = {resource.RLIMIT_NOFILE: (64, 128)}
    real = resource.getrlimit
    monkeypatch.setattr(resource, "getrlimit", lambda which: hard.get(which) or real(which))
    script = SandboxLimits(open_files=4096, processes=0).script()
    assert "ulimit -n 128" in script
    assert "ulimit -p" not in script  # 0 leaves it as inherited
    assert script.startswith("ulimit -c 0") and script.endswith('exec "$@"')


def test_toolchain_dirs_are_whole_python_prefixes_and_pyenv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    home = tmp_path / "home"
    (home / ".pyenv" / "shims").mkdir(parents=True)
    (home / ".cargo" / "bin").mkdir(parents=True)
    environ = {
        "HOME": str(home),
        "PATH": f"{venv}/bin:{home}/.pyenv/shims:{home}/.cargo/bin:/usr/bin:/bin",
    }
    assert default_toolchain_dirs(environ) == [
        str(venv),
        str(home / ".pyenv"),
        str(home / ".cargo" / "bin"),
    ]


def test_the_sandbox_sees_only_what_it_mounts(tmp_path: Path) -> None:
    mounts = Mounts(tmp_path / "repo", tmp_path / "home", tmp_path / "tmp", network=False)
    sandbox = Sandbox(toolchain_dirs=[str(tmp_path / "toolchain")])
    assert sandbox.sees("/usr/bin/git", mounts)
    assert sandbox.sees(str(tmp_path / "toolchain" / "bin" / "go"), mounts)
    assert sandbox.sees(str(tmp_path / "repo" / "gradlew"), mounts)
    assert not sandbox.sees(str(tmp_path / "elsewhere" / "tool"), mounts)
    assert not sandbox.sees("/opt/tool", mounts)
    path = f"/usr/bin:{tmp_path / 'elsewhere'}:{tmp_path / 'toolchain'}"
    assert sandbox.search_path(path, mounts) == f"/usr/bin:{tmp_path / 'toolchain'}"
