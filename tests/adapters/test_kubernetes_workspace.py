"""The kubernetes workspace backend (contract §7.2): the runner pod it asks for (name, labels,
security context, the init container's script, image bundles), how it reads a pod's way to Ready,
and — against the Kubernetes emulator of `tests/support/kube.py`, through the official client
over HTTP — creation, readiness failures and removal, with nothing left behind on failure."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client

from serve_app.adapters.kubernetes_workspace import (
    GIT_AUTH_MOUNT,
    PROFILE_ANNOTATION,
    SESSION_ID_ANNOTATION,
    KubernetesWorkspaceManager,
    PodOptions,
    git_secret_name,
    init_script,
    label_value,
    pod_manifest,
    pod_name,
    readiness,
    runner_bundle,
)
from serve_app.config import RunnerBundle, Settings
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.models import Principal, Runtime, Session
from tests.deploy.manifests import KUBERNETES_VERSION
from tests.support.git_repos import bare_repo, commit_file, git, init_repo

PRINCIPAL = Principal(tenant_id="Tenant_A", actor_id="agent-1", roles=["developer"])
GPU_BUNDLE = {
    "image": "registry.local/cuda:12",
    "resources": {
        "limits": {"nvidia.com/gpu": "1", "memory": "16Gi", "cpu": "4"},
        "requests": {"cpu": "2", "memory": "8Gi"},
    },
    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3090"},
    "tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "toleration_seconds": 60, "effect": "NoExecute"},
    ],
}


def k8s_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "workspace_backend": "kubernetes",
        "k8s_namespace": "fleet",
        "k8s_runner_image_bundles": {
            "toolchains": "registry.local/tc:1",
            "gpu": GPU_BUNDLE,
        },
    }
    values.update(overrides)
    return Settings(**values)


def manifest(
    settings: Settings | None = None,
    *,
    session_id: str = "session-0123abcd",
    metadata: dict[str, str] | None = None,
    repo_url: str | None = "https://git.example/org/repo.git",
    repo_ref: str | None = "main",
) -> dict[str, Any]:
    options = PodOptions.of(settings or k8s_settings())
    metadata = metadata or {}
    profile, bundle = runner_bundle(options, metadata)
    return pod_manifest(
        options,
        session_id=session_id,
        principal=PRINCIPAL,
        profile=profile,
        bundle=bundle,
        repo_url=repo_url,
        repo_ref=repo_ref,
        git_secret=git_secret_name(options, metadata),
    )


def containers(pod: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    (init,) = pod["spec"]["initContainers"]
    (runner,) = pod["spec"]["containers"]
    return init, runner


# --- names and labels ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session_id", "expected"),
    [
        ("session-0123abcd", "ws-session-0123abcd"),
        ("Sess_ION.42", "ws-sess-ion-42"),
        ("--x--", "ws-x"),
        ("___", "ws-session"),
        ("a" * 100, "ws-" + "a" * 60),
        ("a" * 59 + "_bcd", "ws-" + "a" * 59),  # cut at 63, no trailing '-'
    ],
)
def test_pod_name(session_id: str, expected: str) -> None:
    name = pod_name("ws", session_id)
    assert name == expected
    assert len(name) <= 63


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tenant_A", "tenant_a"),
        ("acme corp/eu", "acme-corp-eu"),
        ("", "unknown"),
        ("___", "unknown"),
        ("-x.", "x"),
        ("b" * 80, "b" * 63),
    ],
)
def test_label_value(value: str, expected: str) -> None:
    assert label_value(value) == expected


# --- the pod asked for ---------------------------------------------------------------------------


def test_the_pod_is_a_valid_kubernetes_object_with_the_contract_layout() -> None:
    pod = manifest()
    assert kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True) == "1.34"
    assert pod["metadata"]["name"] == "ws-session-0123abcd"
    assert pod["metadata"]["namespace"] == "fleet"
    assert pod["metadata"]["labels"] == {
        "app": "workspace-session",
        "workspace_id": "session-0123abcd",
        "workspace_tenant": "tenant_a",
    }
    assert pod["metadata"]["annotations"] == {SESSION_ID_ANNOTATION: "session-0123abcd"}
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["volumes"] == [{"name": "workspace", "emptyDir": {}}]
    assert "nodeSelector" not in spec and "tolerations" not in spec
    init, runner = containers(pod)
    assert init["name"] == "repo-init"
    assert init["image"] == "docker.io/alpine/git:2.45.2"
    assert init["imagePullPolicy"] == "Always"
    assert init["command"][:2] == ["sh", "-lc"]
    assert init["volumeMounts"] == [{"name": "workspace", "mountPath": "/workspace"}]
    assert runner == {
        "name": "runner",
        "image": "docker.io/library/alpine:3.20",
        "imagePullPolicy": "Always",
        "command": ["sh", "-lc", "sleep infinity"],
        "workingDir": "/workspace/repo",
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": False,
        },
    }
    for container in (init, runner):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_settings_reach_the_pod() -> None:
    settings = k8s_settings(
        k8s_service_account="runner-sa",
        k8s_automount_sa_token=True,
        k8s_run_as_user=2000,
        k8s_run_as_group=2001,
        k8s_fs_group=2002,
        k8s_read_only_root_fs=True,
        k8s_container="main",
        k8s_pod_prefix="wsp",
        k8s_workdir="/workspace/src",
        k8s_init_image="registry.local/git:2",
        k8s_runner_image="registry.local/runner:1",
    )
    pod = manifest(settings)
    assert kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True) == "1.34"
    spec = pod["spec"]
    assert pod["metadata"]["name"] == "wsp-session-0123abcd"
    assert spec["serviceAccountName"] == "runner-sa"
    assert spec["automountServiceAccountToken"] is True
    assert spec["securityContext"]["runAsUser"] == 2000
    assert spec["securityContext"]["runAsGroup"] == 2001
    assert spec["securityContext"]["fsGroup"] == 2002
    init, runner = containers(pod)
    assert init["image"] == "registry.local/git:2"
    assert "workdir=/workspace/src" in init["command"][2]
    assert runner["name"] == "main"
    assert runner["image"] == "registry.local/runner:1"
    assert runner["workingDir"] == "/workspace/src"
    assert runner["securityContext"]["readOnlyRootFilesystem"] is True
    # A read-only root keeps a writable /tmp for commands.
    assert {"name": "tmp", "mountPath": "/tmp"} in runner["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in spec["volumes"]


def test_a_profile_selects_its_bundle_lower_cased() -> None:
    pod = manifest(metadata={"runner_profile": " ToolChains "})
    _, runner = containers(pod)
    assert runner["image"] == "registry.local/tc:1"
    assert "resources" not in runner
    assert pod["metadata"]["annotations"][PROFILE_ANNOTATION] == "toolchains"


def test_a_gpu_bundle_sets_resources_node_selector_and_tolerations() -> None:
    pod = manifest(metadata={"runner_profile": "gpu"})
    assert kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True) == "1.34"
    _, runner = containers(pod)
    assert runner["image"] == "registry.local/cuda:12"
    assert runner["resources"] == GPU_BUNDLE["resources"]
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3090"}
    assert pod["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "tolerationSeconds": 60, "effect": "NoExecute"},
    ]
    init, _ = containers(pod)
    assert "resources" not in init


def test_the_profile_key_is_a_setting() -> None:
    settings = k8s_settings(k8s_runner_profile_metadata_key="bundle")
    _, runner = containers(manifest(settings, metadata={"bundle": "gpu", "runner_profile": "x"}))
    assert runner["image"] == "registry.local/cuda:12"


def test_unknown_profiles_fail_with_the_contracts_messages() -> None:
    options = PodOptions.of(k8s_settings())
    with pytest.raises(ServiceError) as raised:
        runner_bundle(options, {"runner_profile": "Fat"})
    assert raised.value.code is ErrorCode.INTERNAL
    assert raised.value.message == 'runner profile "fat" is not configured'
    bare = PodOptions.of(k8s_settings(k8s_runner_image_bundles={}))
    with pytest.raises(ServiceError) as raised:
        runner_bundle(bare, {"runner_profile": "toolchains"})
    assert raised.value.message == (
        'runner profile "toolchains" requested but no runner image bundles are configured'
    )
    assert runner_bundle(bare, {"runner_profile": " "}) == (
        "",
        RunnerBundle(image="docker.io/library/alpine:3.20"),
    )


def test_callers_choose_a_profile_never_an_image() -> None:
    pod = manifest(metadata={"image": "evil/image", "runner_image": "evil/image"})
    _, runner = containers(pod)
    assert runner["image"] == "docker.io/library/alpine:3.20"


def test_the_git_secret_comes_from_metadata_then_the_setting() -> None:
    options = PodOptions.of(k8s_settings(k8s_git_auth_secret="default-creds"))
    assert git_secret_name(options, {}) == "default-creds"
    assert git_secret_name(options, {"git_secret_name": "named"}) == "named"
    assert git_secret_name(options, {"git_secret_name": "named", "git_auth_secret": "a"}) == "a"
    assert git_secret_name(PodOptions.of(k8s_settings()), {}) == ""


def test_the_git_secret_is_mounted_read_only_in_the_init_container_only() -> None:
    pod = manifest(k8s_settings(k8s_git_auth_secret="git-creds"))
    assert kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True) == "1.34"
    assert {
        "name": "git-auth",
        "secret": {"secretName": "git-creds", "defaultMode": 0o440},
    } in pod["spec"]["volumes"]
    init, runner = containers(pod)
    assert {"name": "git-auth", "mountPath": GIT_AUTH_MOUNT, "readOnly": True} in init[
        "volumeMounts"
    ]
    assert all(mount["name"] != "git-auth" for mount in runner["volumeMounts"])
    # Nothing to clone, nothing to authenticate.
    bare = manifest(k8s_settings(k8s_git_auth_secret="git-creds"), repo_url=None)
    assert all(volume["name"] != "git-auth" for volume in bare["spec"]["volumes"])


# --- the init container's script -------------------------------------------------------------


@pytest.fixture
def fake_git(tmp_path: Path) -> Path:
    """A `git` that records its argv, HOME's netrc and GIT_SSH_COMMAND instead of cloning."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    script = bin_dir / "git"
    script.write_text(
        "#!/bin/sh\n"
        f"out={shlex.quote(str(record))}\n"
        'printf "%s\\n" "$@" > "$out.argv"\n'
        'if [ -f "$HOME/.netrc" ]; then cp "$HOME/.netrc" "$out.netrc"; '
        'stat -c %a "$HOME/.netrc" > "$out.netrc-mode"; fi\n'
        'printf "%s" "${GIT_SSH_COMMAND:-}" > "$out.ssh"\n'
        'if [ -f "$HOME/.ssh/id" ]; then cp "$HOME/.ssh/id" "$out.key"; fi\n'
    )
    script.chmod(0o755)
    return record


def run_script(
    script: str, tmp_path: Path, *, fake: bool = True
) -> subprocess.CompletedProcess[str]:
    path = f"{tmp_path / 'bin'}:{os.environ['PATH']}" if fake else os.environ["PATH"]
    env = {
        "PATH": path,
        "HOME": str(tmp_path / "no-home"),
        "TMPDIR": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }
    return subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_script_empties_the_workdir_and_clones_shallowly(tmp_path: Path) -> None:
    origin = init_repo(tmp_path / "src", {"README.md": "one\n"})
    commit_file(origin, "second.txt", "two\n")
    git(origin, "branch", "feature")
    bare = bare_repo(tmp_path / "origin.git")
    git(origin, "push", "-q", str(bare), "main", "feature")
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    (workdir / ".stale").write_text("old")
    (workdir / "old").mkdir()
    script = init_script(str(workdir), f"file://{bare}", "feature", auth_dir=str(tmp_path / "no"))
    result = run_script(script, tmp_path, fake=False)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == [".git", "README.md", "second.txt"]
    assert git(workdir, "rev-parse", "--abbrev-ref", "HEAD").strip() == "feature"
    assert git(workdir, "rev-list", "--count", "HEAD").strip() == "1"  # --depth 1


def test_without_a_repo_the_script_only_prepares_the_workdir(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    script = init_script(str(workdir), None, None)
    assert "git" not in script
    assert run_script(script, tmp_path).returncode == 0
    assert workdir.is_dir() and not any(workdir.iterdir())


def test_every_value_is_shell_quoted(tmp_path: Path, fake_git: Path) -> None:
    marker = tmp_path / "pwned"
    url = f"https://h.example/$(touch {marker})/`touch {marker}`;touch {marker}"
    ref = f"x';touch {marker};'"
    workdir = tmp_path / "it's $(touch pwned)"
    script = init_script(str(workdir), url, ref, auth_dir=str(tmp_path / "none"))
    result = run_script(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    argv = Path(f"{fake_git}.argv").read_text().splitlines()
    assert argv == ["clone", "--depth", "1", "--branch", ref, "--", url, str(workdir)]


def write_secret(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_text(content)
    return directory


def test_a_token_becomes_a_netrc_for_the_repository_host(tmp_path: Path, fake_git: Path) -> None:
    auth = write_secret(tmp_path / "auth", {"token": "s3cret\n"})
    script = init_script(str(tmp_path / "w"), "https://git.example:8443/o/r.git", None,
                         auth_dir=str(auth))  # fmt: skip
    assert run_script(script, tmp_path).returncode == 0
    assert Path(f"{fake_git}.netrc").read_text() == (
        "machine git.example\nlogin oauth2\npassword s3cret\n"
    )
    assert Path(f"{fake_git}.netrc-mode").read_text().strip() == "600"
    assert Path(f"{fake_git}.ssh").read_text() == ""


def test_a_token_with_a_username_and_a_host(tmp_path: Path, fake_git: Path) -> None:
    auth = write_secret(
        tmp_path / "auth", {"token": "t0k", "username": "bot", "host": "mirror.example"}
    )
    script = init_script(str(tmp_path / "w"), "https://git.example/o/r", None, auth_dir=str(auth))
    assert run_script(script, tmp_path).returncode == 0
    assert Path(f"{fake_git}.netrc").read_text() == (
        "machine mirror.example\nlogin bot\npassword t0k\n"
    )


def test_a_netrc_is_used_as_it_is(tmp_path: Path, fake_git: Path) -> None:
    netrc = "machine a.example login u password p\n"
    auth = write_secret(tmp_path / "auth", {".netrc": netrc, "token": "ignored"})
    script = init_script(str(tmp_path / "w"), "https://a.example/r", None, auth_dir=str(auth))
    assert run_script(script, tmp_path).returncode == 0
    assert Path(f"{fake_git}.netrc").read_text() == netrc


@pytest.mark.parametrize("known_hosts", [True, False])
def test_an_ssh_key_with_or_without_known_hosts(
    tmp_path: Path, fake_git: Path, known_hosts: bool
) -> None:
    files = {"ssh-privatekey": "KEY"}
    if known_hosts:
        files["known_hosts"] = "git.example ssh-ed25519 AAAA\n"
    auth = write_secret(tmp_path / "auth", files)
    script = init_script(str(tmp_path / "w"), "git@git.example:o/r.git", None, auth_dir=str(auth))
    assert run_script(script, tmp_path).returncode == 0
    ssh = Path(f"{fake_git}.ssh").read_text()
    assert "-o IdentitiesOnly=yes" in ssh
    expected = "StrictHostKeyChecking=yes" if known_hosts else "StrictHostKeyChecking=accept-new"
    assert ssh.endswith(expected)
    assert Path(f"{fake_git}.key").read_text() == "KEY"
    assert not Path(f"{fake_git}.netrc").exists()  # no token for an ssh URL


def test_credentials_stay_off_the_workspace(tmp_path: Path, fake_git: Path) -> None:
    auth = write_secret(tmp_path / "auth", {"token": "t", "ssh-privatekey": "KEY"})
    workdir = tmp_path / "w"
    script = init_script(str(workdir), "https://a.example/r", None, auth_dir=str(auth))
    before = set(tmp_path.iterdir())
    assert run_script(script, tmp_path).returncode == 0
    assert Path(f"{fake_git}.netrc").exists()
    assert not any(workdir.rglob("*"))
    # The temporary HOME with the credentials (under TMPDIR) is removed after the clone.
    left = {p.name for p in set(tmp_path.iterdir()) - before}
    assert left == {"w", "record.argv", "record.netrc", "record.netrc-mode", "record.ssh",
                    "record.key"}  # fmt: skip


# --- readiness -----------------------------------------------------------------------------------


def pod_with(
    phase: str = "Pending",
    *,
    ready: bool = False,
    init_exit: int | None = None,
    waiting: str | None = None,
) -> client.V1Pod:
    conditions = [client.V1PodCondition(type="Ready", status="True" if ready else "False")]
    init_state = client.V1ContainerState()
    if init_exit is not None:
        init_state = client.V1ContainerState(
            terminated=client.V1ContainerStateTerminated(
                exit_code=init_exit, reason="Error", message="fatal: repository not found"
            )
        )
    runner_state = client.V1ContainerState()
    if waiting:
        runner_state = client.V1ContainerState(
            waiting=client.V1ContainerStateWaiting(reason=waiting, message="bad")
        )
    status = client.V1PodStatus(
        phase=phase,
        conditions=conditions,
        init_container_statuses=[
            client.V1ContainerStatus(
                name="repo-init",
                image="i",
                image_id="",
                ready=False,
                restart_count=0,
                state=init_state,
            )
        ],
        container_statuses=[
            client.V1ContainerStatus(
                name="runner",
                image="r",
                image_id="",
                ready=ready,
                restart_count=0,
                state=runner_state,
            )
        ],
    )
    return client.V1Pod(status=status)


def test_readiness_states() -> None:
    assert readiness(pod_with("Running", ready=True)).state == "ready"
    assert readiness(pod_with("Pending")).state == "waiting"
    assert readiness(client.V1Pod()).state == "waiting"
    failed = readiness(pod_with("Pending", init_exit=128))
    assert failed.state == "clone_failed"
    assert "exit code 128" in failed.detail and "repository not found" in failed.detail
    assert readiness(pod_with("Failed")).state == "failed"
    assert readiness(pod_with("Unknown")).state == "failed"
    assert readiness(pod_with("Succeeded")).state == "failed"
    assert readiness(pod_with("Pending", waiting="ImagePullBackOff")).state == "waiting"
    assert "ImagePullBackOff" in readiness(pod_with("Pending", waiting="ImagePullBackOff")).detail
    assert readiness(pod_with("Pending", waiting="InvalidImageName")).state == "failed"


# --- against the emulator ------------------------------------------------------------------------
#
# The emulator (tests/support/kube) serves the API over HTTP and runs each pod's init containers
# and containers as bubblewrap sandboxes on this machine. It does not model scheduling (node
# selectors, tolerations and GPU requests are stored, not acted on), images and their pulls (the
# commands run with this machine's tools), RBAC, admission, graceful termination, or separate
# root filesystems per container (a pod's /tmp is shared by its containers).

NS = "fleet"


@pytest.fixture
def cluster(kube_cluster: Any) -> Any:
    return kube_cluster


def make_manager(cluster: Any, **overrides: Any) -> KubernetesWorkspaceManager:
    values: dict[str, Any] = {
        "git_allowed_schemes": ["https", "http", "git"],
        "k8s_ready_timeout_seconds": 20,
    }
    values.update(overrides)
    return KubernetesWorkspaceManager.from_settings(
        cluster.api_client(), k8s_settings(**values), poll_seconds=0.05
    )


async def create(
    manager: KubernetesWorkspaceManager,
    session_id: str = "Sess_1",
    *,
    metadata: dict[str, str] | None = None,
    repo_url: str | None = None,
    repo_ref: str | None = None,
    source_repo_path: str | None = None,
) -> tuple[str, Runtime]:
    return await manager.create(
        session_id,
        PRINCIPAL,
        source_repo_path=source_repo_path,
        repo_url=repo_url,
        repo_ref=repo_ref,
        metadata=metadata or {},
    )


def pod_names(cluster: Any) -> list[str]:
    return [pod["metadata"]["name"] for pod in cluster.pods(NS)]


def session_of(session_id: str, runtime: Runtime) -> Session:
    now = datetime.now(UTC)
    return Session(
        id=session_id,
        workspace_path=runtime.workdir or "",
        runtime=runtime,
        allowed_paths=["."],
        principal=PRINCIPAL,
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


async def test_create_makes_one_ready_runner_pod(cluster: Any) -> None:
    """The pod the API stored is the one asked for, Ready, its workdir made by `repo-init`."""
    manager = make_manager(cluster)
    path, runtime = await create(manager, metadata={"runner_profile": "toolchains"})
    assert path == "/workspace/repo"
    assert runtime == Runtime(
        kind="kubernetes",
        namespace=NS,
        pod_name="ws-sess-1",
        container="runner",
        workdir="/workspace/repo",
    )
    (stored,) = cluster.pods(NS)
    expected = manifest(session_id="Sess_1", metadata={"runner_profile": "toolchains"},
                        repo_url=None, repo_ref=None)  # fmt: skip
    assert stored["metadata"]["labels"] == {
        "app": "workspace-session",
        "workspace_id": "sess_1",
        "workspace_tenant": "tenant_a",
    }
    assert stored["metadata"]["annotations"] == {
        SESSION_ID_ANNOTATION: "Sess_1",
        PROFILE_ANNOTATION: "toolchains",
    }
    for container in (*stored["spec"]["initContainers"], *stored["spec"]["containers"]):
        # The API server's defaults (and the scheduler's node, below) aside.
        container.pop("terminationMessagePath", None)
        container.pop("terminationMessagePolicy", None)
    assert {key: stored["spec"][key] for key in expected["spec"]} == expected["spec"]
    assert stored["spec"]["containers"][0]["image"] == "registry.local/tc:1"
    assert stored["status"]["phase"] == "Running"
    ready = {c["type"]: c["status"] for c in stored["status"]["conditions"]}
    assert ready["Ready"] == "True"
    assert (cluster.pod_root(NS, "ws-sess-1") / "repo").is_dir()


async def test_a_repository_is_cloned_into_the_pod(
    cluster: Any, tmp_path: Path, git_daemon: Any
) -> None:
    """`repo-init` clones over the network from inside the pod (the emulator's pods share the
    host's network, so a loopback git daemon is reachable)."""
    origin = init_repo(tmp_path / "src", {"README.md": "hello\n"})
    git(origin, "checkout", "-q", "-b", "feature")
    commit_file(origin, "feature.txt", "on a branch\n")
    bare = bare_repo(tmp_path / "origin.git")
    git(origin, "push", "-q", str(bare), "main", "feature")
    manager = make_manager(cluster)
    _, runtime = await create(manager, repo_url=git_daemon.url(bare), repo_ref="feature")
    repo = cluster.pod_root(NS, str(runtime.pod_name)) / "repo"
    assert (repo / "feature.txt").read_text() == "on a branch\n"
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "1"


class AuthenticatingGitServer:
    """Git's smart HTTP on loopback behind HTTP Basic authentication (401 without it)."""

    def __init__(self, backend: Any, user: str, password: str) -> None:
        import base64
        import http.server
        import threading

        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.seen: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                given = self.headers.get("Authorization", "")
                outer.seen.append(given)
                if given != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                backend._respond(self)

            def do_GET(self) -> None:
                self.handle_one()

            def do_POST(self) -> None:
                self.handle_one()

            def log_message(self, format: str, *args: object) -> None:
                pass

        outer = self
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, repository: Path) -> str:
        return f"http://127.0.0.1:{self.port}{repository}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


async def test_a_token_secret_authenticates_the_clone(
    cluster: Any, tmp_path: Path, git_http: Any
) -> None:
    """The Secret named in metadata is mounted in `repo-init` only; its token and username become
    a netrc entry for the repository's host, and the clone authenticates with them. Without the
    Secret the same clone fails (and the pod is deleted)."""
    bare = bare_repo(tmp_path / "private.git")
    origin = init_repo(tmp_path / "src", {"secret.txt": "private\n"})
    git(origin, "push", "-q", str(bare), "main")
    server = AuthenticatingGitServer(git_http, "bot", "t0ken")
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_secret(
        NS,
        {"metadata": {"name": "git-creds"}, "stringData": {"token": "t0ken", "username": "bot"}},
    )
    try:
        manager = make_manager(cluster)
        with pytest.raises(ServiceError) as raised:
            await create(manager, "no-creds", repo_url=server.url(bare))
        assert raised.value.code is ErrorCode.EXECUTION_FAILED
        assert raised.value.message.startswith("git clone failed:")
        assert pod_names(cluster) == []
        _, runtime = await create(
            manager,
            "with-creds",
            repo_url=server.url(bare),
            metadata={"git_auth_secret": "git-creds"},
        )
    finally:
        server.stop()
    pod_root = cluster.pod_root(NS, str(runtime.pod_name))
    assert (pod_root / "repo" / "secret.txt").read_text() == "private\n"
    assert any(seen.startswith("Basic ") for seen in server.seen)
    (stored,) = cluster.pods(NS)
    init, runner = stored["spec"]["initContainers"][0], stored["spec"]["containers"][0]
    assert {"name": "git-auth", "mountPath": GIT_AUTH_MOUNT, "readOnly": True} in init[
        "volumeMounts"
    ]
    assert all(mount["name"] != "git-auth" for mount in runner["volumeMounts"])
    # The credentials' temporary HOME is gone (the emulator shares /tmp between containers).
    assert not list((pod_root.parent / "tmp").glob("*/.netrc"))


async def test_a_gpu_bundle_reaches_the_stored_pod(cluster: Any) -> None:
    """Resources, node selector and tolerations are in the pod the API stored (the emulator
    does not schedule: a real cluster puts it on a node with the GPU)."""
    manager = make_manager(cluster)
    await create(manager, "gpu-1", metadata={"runner_profile": "GPU"})
    (stored,) = cluster.pods(NS)
    runner = stored["spec"]["containers"][0]
    assert runner["image"] == "registry.local/cuda:12"
    assert runner["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert stored["spec"]["nodeSelector"] == GPU_BUNDLE["node_selector"]
    assert stored["spec"]["tolerations"][0] == {
        "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("bundles", "message"),
    [
        ({"toolchains": "x:1"}, 'runner profile "fat" is not configured'),
        ({}, 'runner profile "fat" requested but no runner image bundles are configured'),
    ],
)
async def test_an_unknown_profile_makes_nothing(
    cluster: Any, bundles: dict[str, str], message: str
) -> None:
    manager = make_manager(cluster, k8s_runner_image_bundles=bundles)
    with pytest.raises(ServiceError) as raised:
        await create(manager, metadata={"runner_profile": "Fat"})
    assert (raised.value.code, raised.value.message) == (ErrorCode.INTERNAL, message)
    assert pod_names(cluster) == []
    assert list(cluster.emulator[f"post /api/v1/namespaces/{NS}/pods"]) == []


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"source_repo_path": "/srv/repo"}, ErrorCode.INVALID_ARGUMENT, "source_repo_path is not"),
        ({"repo_url": "/srv/repo"}, ErrorCode.INVALID_ARGUMENT, "repo_url: local repositories"),
        ({"repo_url": "file:///srv/repo"}, ErrorCode.INVALID_ARGUMENT, "repo_url: local"),
        ({"repo_url": "ssh://h/r.git"}, ErrorCode.POLICY_DENIED, "the ssh transport"),
        ({"repo_url": "ext::sh -c x"}, ErrorCode.POLICY_DENIED, "<transport>::"),
        (
            {"repo_url": "https://h/r", "metadata": {"git_auth_secret": "Bad/Name"}},
            ErrorCode.INVALID_ARGUMENT,
            "not a valid Secret name",
        ),
    ],
)
async def test_refused_sources_make_nothing(
    cluster: Any, fields: dict[str, Any], code: ErrorCode, message: str
) -> None:
    manager = make_manager(cluster)
    with pytest.raises(ServiceError) as raised:
        await create(manager, **fields)
    assert raised.value.code is code
    assert message in raised.value.message
    assert list(cluster.emulator[f"post /api/v1/namespaces/{NS}/pods"]) == []


async def test_a_pod_never_ready_is_deleted_at_the_timeout(cluster: Any) -> None:
    """`readiness.never_ready`: the pod stays Pending (ContainerCreating)."""
    cluster.readiness.never_ready = True
    manager = make_manager(cluster, k8s_ready_timeout_seconds=0.6)
    with pytest.raises(ServiceError) as raised:
        await create(manager)
    assert raised.value.code is ErrorCode.INTERNAL
    assert raised.value.message.startswith(
        f"runner pod {NS}/ws-sess-1 was not ready within 0.6 s ("
    )
    assert "ContainerCreating" in raised.value.message
    assert pod_names(cluster) == []


async def test_a_failed_pod_is_deleted(cluster: Any) -> None:
    """`readiness.fail`: the pod goes to phase Failed instead of starting."""
    cluster.readiness.fail = True
    with pytest.raises(ServiceError) as raised:
        await create(make_manager(cluster))
    assert raised.value.code is ErrorCode.INTERNAL
    assert raised.value.message.startswith(f"runner pod {NS}/ws-sess-1 failed: phase Failed")
    assert pod_names(cluster) == []


async def test_a_failed_clone_is_deleted_with_gits_words(
    cluster: Any, tmp_path: Path, git_daemon: Any
) -> None:
    with pytest.raises(ServiceError) as raised:
        await create(make_manager(cluster), repo_url=git_daemon.url(tmp_path / "missing.git"))
    assert raised.value.code is ErrorCode.EXECUTION_FAILED
    assert raised.value.message.startswith("git clone failed: ")
    assert "missing.git" in raised.value.message  # the init container's own output
    assert pod_names(cluster) == []


async def test_an_api_error_on_create_is_internal(cluster: Any) -> None:
    cluster.emulator[f"post /api/v1/namespaces/{NS}/pods"][:1] << 500
    with pytest.raises(ServiceError) as raised:
        await create(make_manager(cluster))
    assert raised.value.code is ErrorCode.INTERNAL
    assert raised.value.message.startswith("cannot create runner pod ws-sess-1: 500")
    assert pod_names(cluster) == []


async def test_a_cancelled_create_deletes_its_pod(cluster: Any) -> None:
    """A caller that goes away while the pod starts leaves no pod behind."""
    cluster.readiness.never_ready = True
    manager = make_manager(cluster)
    task = asyncio.create_task(create(manager))
    for _ in range(200):
        if pod_names(cluster):
            break
        await asyncio.sleep(0.02)
    assert pod_names(cluster) == ["ws-sess-1"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pod_names(cluster) == []


async def test_ids_sharing_a_pod_name_never_touch_the_other_pod(cluster: Any) -> None:
    manager = make_manager(cluster)
    await create(manager, "a_b")
    with pytest.raises(ServiceError) as raised:
        await create(manager, "A.B")
    assert raised.value.code is ErrorCode.ALREADY_EXISTS
    assert pod_names(cluster) == ["ws-a-b"]
    assert cluster.pods(NS)[0]["metadata"]["annotations"][SESSION_ID_ANNOTATION] == "a_b"


async def test_remove_deletes_the_pod_and_tolerates_it_gone(cluster: Any) -> None:
    manager = make_manager(cluster)
    _, runtime = await create(manager, "s-1")
    await create(manager, "s-2")
    await manager.remove(session_of("s-1", runtime))
    assert pod_names(cluster) == ["ws-s-2"]
    await manager.remove(session_of("s-1", runtime))  # already gone: fine
    # A record without the pod's name: found by its label.
    await manager.remove(session_of("s-2", Runtime(kind="kubernetes", namespace=NS)))
    assert pod_names(cluster) == []


async def test_the_start_up_check_names_the_api(cluster: Any) -> None:
    await make_manager(cluster).check()
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard: nothing listens
    unreachable = KubernetesWorkspaceManager.from_settings(
        client.ApiClient(configuration), k8s_settings(), request_timeout=2
    )
    with pytest.raises(
        RuntimeError, match=r"cannot use the Kubernetes API at http://127\.0\.0\.1:9"
    ):
        await unreachable.check()


# --- through the HTTP API ----------------------------------------------------------------------


def test_sessions_over_http_make_and_delete_runner_pods(cluster: Any, tmp_path: Path) -> None:
    """WORKSPACE_BACKEND=kubernetes, the client made from a kubeconfig as in production: POST
    /v1/sessions with `runner_profile=toolchains` answers the pod's runtime once it is Ready;
    DELETE deletes the pod; an unknown profile is a 500 and leaves nothing."""
    from fastapi.testclient import TestClient

    from serve_app.api.app import create_app
    from serve_app.wiring import build_executor, build_session_service

    settings = Settings(
        workspace_root=tmp_path / "workspaces",
        artifact_root=tmp_path / "artifacts",
        workspace_backend="kubernetes",
        kubeconfig=str(cluster.write_kubeconfig(tmp_path / "kubeconfig")),
        k8s_namespace=NS,
        k8s_runner_image_bundles={"toolchains": "registry.local/tc:1"},
    )
    service = build_session_service(settings, build_executor(settings))
    with TestClient(create_app(service)) as http:
        response = http.post(
            "/v1/sessions",
            json={
                "session_id": "api-1",
                "principal": {
                    "tenant_id": "tenant-a",
                    "actor_id": "agent-1",
                    "roles": ["developer"],
                },
                "metadata": {"runner_profile": "toolchains"},
            },
        )
        assert response.status_code == 201, response.text
        session = response.json()["session"]
        assert session["workspace_path"] == "/workspace/repo"
        assert session["runtime"] == {
            "kind": "kubernetes",
            "namespace": NS,
            "pod_name": "ws-api-1",
            "container": "runner",
            "workdir": "/workspace/repo",
        }
        (stored,) = cluster.pods(NS)
        assert stored["spec"]["containers"][0]["image"] == "registry.local/tc:1"
        assert stored["metadata"]["labels"]["workspace_tenant"] == "tenant-a"

        failed = http.post(
            "/v1/sessions",
            json={
                "principal": {"tenant_id": "tenant-a", "actor_id": "agent-1"},
                "metadata": {"runner_profile": "nope"},
            },
        )
        assert failed.status_code == 500
        assert failed.json()["error"] == {
            "code": "internal",
            "message": 'runner profile "nope" is not configured',
        }
        assert pod_names(cluster) == ["ws-api-1"]

        assert http.delete("/v1/sessions/api-1").json() == {"closed": True}
        assert pod_names(cluster) == []
        assert http.get("/v1/sessions/api-1/tools").status_code == 404
