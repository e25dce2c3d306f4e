"""The stand-in Kubernetes API server (`tests/support/kube`), through the official client.

What the stand-in does not model, for every test here: authentication and RBAC (all allowed),
scheduling (no nodes; every pod lands on `stand-in-node`), images and pulls (commands run with
this machine's tools), restarts, probes, graceful termination, resourceVersion conflicts,
controllers other than a deployment's status.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, WSClient

from tests.support.git_repos import GitDaemon, commit_file, init_repo
from tests.support.kube import Cluster, running_cluster
from tests.support.processes import (
    host_processes_with_argument,
    unique_seconds,
    wait_until_none_left_with_argument,
)

NS = "stand-in"
RUNNER_SECURITY = {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True}


def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


def apps(cluster: Cluster) -> client.AppsV1Api:
    return client.AppsV1Api(cluster.api_client())


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached within the timeout")


def pod_phase(cluster: Cluster, name: str, *phases: str) -> client.V1Pod:
    api = core(cluster)

    def reached() -> client.V1Pod | None:
        pod = api.read_namespaced_pod(name, NS)
        return pod if pod.status.phase in phases else None

    result: client.V1Pod = wait_for(reached)
    return result


def runner_pod(name: str, *, init_script: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": RUNNER_SECURITY,
        "containers": [
            {
                "name": "runner",
                "image": "docker.io/library/alpine:3.20",
                "command": ["sh", "-lc", "sleep infinity"],
                "workingDir": "/workspace/repo",
            }
        ],
        "volumes": [{"name": "workspace", "emptyDir": {}}],
        "restartPolicy": "Never",
    }
    for container in spec["containers"]:
        container["volumeMounts"] = [{"name": "workspace", "mountPath": "/workspace"}]
    if init_script is not None:
        spec["initContainers"] = [
            {
                "name": "repo-init",
                "image": "docker.io/alpine/git:2.45.2",
                "command": ["sh", "-lc", init_script],
                "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
            }
        ]
    spec.update(extra)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "workspace-session"}},
        "spec": spec,
    }


def running_pod(cluster: Cluster, name: str = "runner", **kwargs: Any) -> client.V1Pod:
    core(cluster).create_namespaced_pod(NS, runner_pod(name, **kwargs))
    return pod_phase(cluster, name, "Running")


def exec_in(
    cluster: Cluster,
    pod: str,
    command: list[str],
    *,
    stdin: bytes | None = None,
    protocol: str | None = None,
    close_stdin: bool = True,
) -> WSClient:
    """One exec as a runtime would make it; returns the finished client."""
    extra: dict[str, Any] = {}
    if protocol is not None:
        extra["_headers"] = {"sec-websocket-protocol": protocol}
    resp: WSClient = stream(
        core(cluster).connect_get_namespaced_pod_exec,
        pod,
        NS,
        command=command,
        container="runner",
        stdin=stdin is not None,
        stdout=True,
        stderr=True,
        tty=False,
        binary=True,
        _preload_content=False,
        **extra,
    )
    if stdin is not None:
        resp.write_stdin(stdin)
        if close_stdin:
            resp.close_channel(0)
    resp.run_forever(timeout=30)
    return resp


# --- objects ------------------------------------------------------------------------------


def test_crud_with_server_set_metadata_and_status_errors(kube_cluster: Cluster) -> None:
    api = core(kube_cluster)
    made = api.create_namespaced_config_map(
        NS, {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    assert made.metadata.uid and made.metadata.resource_version
    assert made.metadata.creation_timestamp is not None and made.metadata.generation == 1
    assert made.metadata.namespace == NS

    with pytest.raises(ApiException) as duplicate:
        api.create_namespaced_config_map(NS, {"metadata": {"name": "settings"}})
    assert duplicate.value.status == 409
    assert status_of(duplicate.value)["reason"] == "AlreadyExists"
    assert status_of(duplicate.value)["message"] == 'configmaps "settings" already exists'

    patched = api.patch_namespaced_config_map("settings", NS, {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    assert int(patched.metadata.resource_version) > int(made.metadata.resource_version)
    assert patched.metadata.uid == made.metadata.uid

    replaced = api.replace_namespaced_config_map(
        "settings", NS, {"metadata": {"name": "settings"}, "data": {"c": "3"}}
    )
    assert replaced.data == {"c": "3"}
    assert replaced.metadata.creation_timestamp == made.metadata.creation_timestamp

    listed = api.list_namespaced_config_map(NS)
    assert [item.metadata.name for item in listed.items] == ["settings"]
    assert api.read_namespaced_config_map("settings", NS).data == {"c": "3"}

    api.delete_namespaced_config_map("settings", NS)
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_config_map("settings", NS)
    assert missing.value.status == 404
    body = status_of(missing.value)
    assert body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["message"] == 'configmaps "settings" not found'
    assert body["details"] == {"name": "settings", "kind": "configmaps"}
    with pytest.raises(ApiException) as missing_deployment:
        apps(kube_cluster).read_namespaced_deployment("web", NS)
    assert status_of(missing_deployment.value)["message"] == 'deployments.apps "web" not found'


def test_put_never_creates_and_json_patch_applies(kube_cluster: Cluster) -> None:
    """PUT on a missing object is 404 (for the kinds here, as on a real server): a
    create-or-update is create + 409 → replace, or server-side apply."""
    api = core(kube_cluster)
    with pytest.raises(ApiException) as missing:
        api.replace_namespaced_service(
            "web", NS, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
        )
    assert missing.value.status == 404
    api.create_namespaced_service(
        NS, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    patched = api.patch_namespaced_service(
        "web", NS, [{"op": "add", "path": "/metadata/labels", "value": {"tier": "front"}}]
    )
    assert patched.metadata.labels == {"tier": "front"}
    assert patched.spec.cluster_ip and patched.spec.ports[0].target_port == 80


def test_server_side_apply_creates_then_updates(kube_cluster: Cluster) -> None:
    deployments = apps(kube_cluster)
    manifest = deployment("web", replicas=2)
    created = deployments.patch_namespaced_deployment(
        "web",
        NS,
        manifest,
        field_manager="workspace",
        _content_type="application/apply-patch+yaml",
    )
    assert created.metadata.generation == 1 and created.spec.replicas == 2
    manifest["spec"]["replicas"] = 4
    updated = deployments.patch_namespaced_deployment(
        "web",
        NS,
        manifest,
        field_manager="workspace",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    assert updated.spec.replicas == 4 and updated.metadata.generation == 2
    assert updated.metadata.uid == created.metadata.uid

    with pytest.raises(ApiException) as no_manager:
        deployments.patch_namespaced_deployment(
            "web", NS, manifest, _content_type="application/apply-patch+yaml"
        )
    assert (
        no_manager.value.status == 422 and "fieldManager" in status_of(no_manager.value)["message"]
    )


def test_dry_run_stores_nothing(kube_cluster: Cluster) -> None:
    api = core(kube_cluster)
    answer = api.create_namespaced_config_map(NS, {"metadata": {"name": "x"}}, dry_run="All")
    assert answer.metadata.name == "x"
    assert api.list_namespaced_config_map(NS).items == []


def test_validation_answers_422(kube_cluster: Cluster) -> None:
    api = core(kube_cluster)
    with pytest.raises(ApiException) as bad_name:
        api.create_namespaced_config_map(NS, {"metadata": {"name": "Not_Valid"}})
    assert bad_name.value.status == 422 and status_of(bad_name.value)["reason"] == "Invalid"
    with pytest.raises(ApiException) as bad_label:
        api.create_namespaced_config_map(
            NS, {"metadata": {"name": "ok", "labels": {"workspace_id": "x" * 64}}}
        )
    assert bad_label.value.status == 422
    with pytest.raises(ApiException) as no_image:
        api.create_namespaced_pod(
            NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
        )
    assert "spec.containers[0].image: Required value" in status_of(no_image.value)["message"]


def test_label_and_field_selectors(kube_cluster: Cluster) -> None:
    api = core(kube_cluster)
    for name, labels in {
        "a": {"app": "workspace-session", "workspace_tenant": "t1"},
        "b": {"app": "workspace-session", "workspace_tenant": "t2"},
        "c": {"app": "workspace-container-run"},
        "d": {},
    }.items():
        api.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": labels}})

    def names(**query: str) -> list[str]:
        return [item.metadata.name for item in api.list_namespaced_config_map(NS, **query).items]

    assert names(label_selector="app=workspace-session") == ["a", "b"]
    assert names(label_selector="app==workspace-session,workspace_tenant!=t1") == ["b"]
    assert names(label_selector="app!=workspace-session") == ["c", "d"]
    assert names(label_selector="workspace_tenant") == ["a", "b"]
    assert names(label_selector="!workspace_tenant") == ["c", "d"]
    assert names(label_selector="workspace_tenant in (t2, t3)") == ["b"]
    assert names(label_selector="workspace_tenant notin (t2),app") == ["a", "c"]
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="metadata.name!=c") == ["a", "b", "d"]
    with pytest.raises(ApiException) as bad_selector:
        api.list_namespaced_config_map(NS, label_selector="app in app")
    assert bad_selector.value.status == 400
    with pytest.raises(ApiException) as bad_field:
        api.list_namespaced_config_map(NS, field_selector="data.x=1")
    assert bad_field.value.status == 400
    assert "field label not supported" in status_of(bad_field.value)["message"]
    everywhere = client.CoreV1Api(kube_cluster.api_client()).list_config_map_for_all_namespaces(
        label_selector="app=workspace-container-run"
    )
    assert [item.metadata.name for item in everywhere.items] == ["c"]


def test_list_paging(kube_cluster: Cluster) -> None:
    api = core(kube_cluster)
    for index in range(5):
        api.create_namespaced_secret(
            NS, {"metadata": {"name": f"s{index}"}, "stringData": {"k": f"v{index}"}}
        )
    first = api.list_namespaced_secret(NS, limit=2)
    assert [s.metadata.name for s in first.items] == ["s0", "s1"]
    assert first.metadata.remaining_item_count == 3
    rest = api.list_namespaced_secret(NS, limit=10, _continue=first.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["s2", "s3", "s4"]
    assert base64.b64decode(rest.items[0].data["k"]) == b"v2"  # stringData folded into data


def test_namespaces_and_their_contents_are_deleted_together(kube_cluster: Cluster) -> None:
    api = core(kube_cluster)
    api.create_namespace({"metadata": {"name": "team"}})
    assert api.read_namespace("team").status.phase == "Active"
    api.create_namespaced_config_map("team", {"metadata": {"name": "x"}})
    api.delete_namespace("team")
    assert [n.metadata.name for n in api.list_namespace().items] == []
    assert api.list_namespaced_config_map("team").items == []


def test_watch_honours_selectors_and_timeout(kube_cluster: Cluster) -> None:
    api = core(kube_cluster)
    api.create_namespaced_config_map(NS, {"metadata": {"name": "old", "labels": {"w": "1"}}})
    version = api.list_namespaced_config_map(NS).metadata.resource_version
    api.create_namespaced_config_map(NS, {"metadata": {"name": "yes", "labels": {"w": "1"}}})
    api.create_namespaced_config_map(NS, {"metadata": {"name": "no", "labels": {"w": "2"}}})
    started = time.monotonic()
    events = [
        (event["type"], event["object"].metadata.name)
        for event in watch.Watch().stream(
            api.list_namespaced_config_map,
            NS,
            label_selector="w=1",
            resource_version=version,
            timeout_seconds=1,
        )
    ]
    assert events == [("ADDED", "yes")]
    assert time.monotonic() - started < 10


def test_kubeconfig_and_reactions(kube_cluster: Cluster, tmp_path: Path) -> None:
    """A kubeconfig for the settings/`KUBECONFIG`; kmock reactions override the stand-in
    (fault injection)."""
    from serve_app.config import Settings
    from serve_app.runtime.kube_api import api_client

    path = kube_cluster.write_kubeconfig(tmp_path / "kubeconfig")
    made = config.new_client_from_config(config_file=str(path))
    assert client.VersionApi(made).get_code().git_version == "v1.32.0-stand-in"
    from_settings = api_client(Settings(kubeconfig=str(path)))
    assert client.CoreV1Api(from_settings).list_namespaced_pod(NS).items == []

    assert kube_cluster.emulator is not None
    kube_cluster.emulator[f"post /api/v1/namespaces/{NS}/configmaps"][:1] << 503
    with pytest.raises(ApiException) as injected:
        core(kube_cluster).create_namespaced_config_map(NS, {"metadata": {"name": "x"}})
    assert injected.value.status == 503
    # Once the reaction is used up, the stand-in answers again.
    made = core(kube_cluster).create_namespaced_config_map(NS, {"metadata": {"name": "x"}})
    assert made.metadata.uid


# --- pods ---------------------------------------------------------------------------------


def test_pod_becomes_ready_after_its_init_containers(kube_cluster: Cluster) -> None:
    script = "set -eu; mkdir -p /workspace/repo; echo cloned > /workspace/repo/README; echo done"
    created = core(kube_cluster).create_namespaced_pod(
        NS, runner_pod("session-1", init_script=script)
    )
    assert created.status.phase == "Pending"
    pod = pod_phase(kube_cluster, "session-1", "Running")
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    init = pod.status.init_container_statuses[0]
    assert init.state.terminated.exit_code == 0 and init.state.terminated.reason == "Completed"
    runner = pod.status.container_statuses[0]
    assert runner.ready and runner.state.running is not None
    assert pod.spec.node_name == "stand-in-node" and pod.status.pod_ip
    assert (kube_cluster.pod_root(NS, "session-1") / "repo" / "README").read_text() == "cloned\n"
    stored = kube_cluster.pods(NS)
    assert [p["metadata"]["name"] for p in stored] == ["session-1"]
    assert stored[0]["metadata"]["creationTimestamp"].endswith("Z")


def test_init_container_clones_from_a_loopback_git_server(
    kube_cluster: Cluster, git_daemon: GitDaemon, tmp_path: Path
) -> None:
    """The contract's init script shape: `set -eu`, an emptied workdir, a shallow clone."""
    origin = init_repo(tmp_path / "origin", {"README.md": "hello\n"})
    commit_file(origin, "src.txt", "two\n")
    script = (
        "set -eu; mkdir -p /workspace/repo; rm -rf /workspace/repo/* /workspace/repo/.[!.]*; "
        f"git clone --depth 1 {git_daemon.url(origin)} /workspace/repo"
    )
    running_pod(kube_cluster, "cloned", init_script=script)
    repo = kube_cluster.pod_root(NS, "cloned") / "repo"
    assert (repo / "src.txt").read_text() == "two\n"
    log = exec_in(kube_cluster, "cloned", ["git", "log", "--oneline"])
    assert log.returncode == 0 and len(log.read_stdout().splitlines()) == 1


def test_failing_init_container_fails_the_pod(kube_cluster: Cluster) -> None:
    core(kube_cluster).create_namespaced_pod(
        NS, runner_pod("broken", init_script="echo fatal: repository not found >&2; exit 7")
    )
    pod = pod_phase(kube_cluster, "broken", "Failed")
    init = pod.status.init_container_statuses[0]
    assert init.state.terminated.exit_code == 7 and init.state.terminated.reason == "Error"
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    logs = core(kube_cluster).read_namespaced_pod_log("broken", NS, container="repo-init")
    assert logs == "fatal: repository not found\n"


def test_readiness_policies(kube_cluster: Cluster) -> None:
    api = core(kube_cluster)
    kube_cluster.readiness.never_ready = True
    api.create_namespaced_pod(NS, runner_pod("stuck"))
    time.sleep(kube_cluster.readiness.delay_seconds + 0.5)
    pod = api.read_namespaced_pod("stuck", NS)
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    kube_cluster.readiness.never_ready = False
    kube_cluster.readiness.fail = True
    api.create_namespaced_pod(NS, runner_pod("doomed"))
    assert pod_phase(kube_cluster, "doomed", "Failed").status.phase == "Failed"


def test_missing_secret_volume_keeps_the_pod_pending_until_it_exists(
    kube_cluster: Cluster,
) -> None:
    manifest = runner_pod("with-auth")
    manifest["spec"]["volumes"].append({"name": "git-auth", "secret": {"secretName": "creds"}})
    manifest["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "git-auth", "mountPath": "/var/run/workspace-git-auth", "readOnly": True}
    )
    api = core(kube_cluster)
    api.create_namespaced_pod(NS, manifest)
    time.sleep(kube_cluster.readiness.delay_seconds + 0.5)
    assert api.read_namespaced_pod("with-auth", NS).status.phase == "Pending"
    api.create_namespaced_secret(NS, {"metadata": {"name": "creds"}, "stringData": {"token": "s3"}})
    pod_phase(kube_cluster, "with-auth", "Running")
    read = exec_in(kube_cluster, "with-auth", ["cat", "/var/run/workspace-git-auth/token"])
    assert read.read_stdout() == b"s3"


def test_pod_logs_are_text_with_tail_and_container(kube_cluster: Cluster) -> None:
    script = "for i in 1 2 3 4 5; do echo line $i; done"
    running_pod(kube_cluster, "logged", init_script=script)
    api = core(kube_cluster)
    assert api.read_namespaced_pod_log("logged", NS, container="repo-init") == "".join(
        f"line {i}\n" for i in range(1, 6)
    )
    assert (
        api.read_namespaced_pod_log("logged", NS, container="repo-init", tail_lines=2)
        == "line 4\nline 5\n"
    )
    assert api.read_namespaced_pod_log("logged", NS, container="runner") == ""
    with pytest.raises(ApiException) as which:
        api.read_namespaced_pod_log("logged", NS, container="nope")
    assert which.value.status == 400
    url = f"{kube_cluster.url}/api/v1/namespaces/{NS}/pods/logged/log?container=repo-init"
    with urllib.request.urlopen(url) as response:
        assert response.headers["Content-Type"].startswith("text/plain")


def test_a_finished_container_finishes_the_pod_with_its_logs(kube_cluster: Cluster) -> None:
    """A `container.run`-style pod: the container's own command runs to completion."""
    api = core(kube_cluster)
    api.create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "task", "labels": {"app": "workspace-container-run"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "task", "image": "alpine", "command": ["sh", "-c", "echo out; exit 0"]}
                ],
            },
        },
    )
    pod = pod_phase(kube_cluster, "task", "Succeeded")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert api.read_namespaced_pod_log("task", NS) == "out\n"


def test_edit_backdates_a_pod_for_janitor_tests(kube_cluster: Cluster) -> None:
    running_pod(kube_cluster, "aged")
    kube_cluster.edit(
        "v1/pods",
        NS,
        "aged",
        {"metadata": {"creationTimestamp": "2020-01-01T00:00:00Z"}, "status": {"phase": "Failed"}},
    )
    time.sleep(0.3)
    pod = core(kube_cluster).read_namespaced_pod("aged", NS)
    assert pod.metadata.creation_timestamp.year == 2020 and pod.status.phase == "Failed"


# --- exec ---------------------------------------------------------------------------------


def test_exec_splits_streams_and_reports_the_exit_code(kube_cluster: Cluster) -> None:
    running_pod(kube_cluster, init_script="mkdir -p /workspace/repo")
    ok = exec_in(kube_cluster, "runner", ["sh", "-c", "id -u; pwd; echo warning >&2"])
    assert ok.subprotocol == "v5.channel.k8s.io"
    assert ok.read_stdout() == b"1000\n/workspace/repo\n"
    assert ok.read_stderr() == b"warning\n"
    assert ok.returncode == 0

    failed = exec_in(kube_cluster, "runner", ["sh", "-c", "echo partial; exit 3"])
    assert failed.read_stdout() == b"partial\n"
    assert failed.returncode == 3
    records = kube_cluster.execs
    assert [r.exit_code for r in records] == [0, 3]
    assert records[1].command == ["sh", "-c", "echo partial; exit 3"]


def test_exec_status_channel_is_what_a_real_server_writes(kube_cluster: Cluster) -> None:
    running_pod(kube_cluster)
    statuses = []
    for command in (["true"], ["sh", "-c", "exit 5"], ["no-such-tool"]):
        resp: WSClient = stream(
            core(kube_cluster).connect_get_namespaced_pod_exec,
            "runner",
            NS,
            command=command,
            stdin=False,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=30)
        statuses.append(json.loads(resp.read_channel(ERROR_CHANNEL)))
    assert statuses[0] == {"metadata": {}, "status": "Success"}
    assert statuses[1] == {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: error executing command "
            "[sh -c exit 5], exit code 5"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "5"}]},
    }
    assert statuses[2]["reason"] == "InternalError" and statuses[2]["code"] == 500
    assert "executable file not found in $PATH" in statuses[2]["message"]


def test_exec_pipes_stdin_under_v5_and_v4(kube_cluster: Cluster) -> None:
    running_pod(kube_cluster)
    payload = bytes(range(256)) * 1024  # binary, 256 KiB
    v5 = exec_in(kube_cluster, "runner", ["sh", "-c", "cat > /workspace/x"], stdin=payload)
    assert v5.subprotocol == "v5.channel.k8s.io" and v5.returncode == 0
    assert (kube_cluster.pod_root(NS, "runner") / "x").read_bytes() == payload
    back = exec_in(kube_cluster, "runner", ["cat", "/workspace/x"])
    assert back.read_stdout() == payload

    # v4 cannot close stdin without closing the connection: read a known length instead.
    v4 = exec_in(
        kube_cluster,
        "runner",
        ["sh", "-c", "head -c 5 > /workspace/y"],
        stdin=b"hello",
        protocol="v4.channel.k8s.io",
        close_stdin=False,
    )
    assert v4.subprotocol == "v4.channel.k8s.io" and v4.returncode == 0
    assert (kube_cluster.pod_root(NS, "runner") / "y").read_bytes() == b"hello"


def test_a_client_that_leaves_early_has_its_command_killed(kube_cluster: Cluster) -> None:
    running_pod(kube_cluster)
    marker = unique_seconds(60)
    resp: WSClient = stream(
        core(kube_cluster).connect_get_namespaced_pod_exec,
        "runner",
        NS,
        command=["sh", "-c", f"setsid sleep {marker} & sleep {marker}"],
        stdin=False,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    wait_for(lambda: len(host_processes_with_argument(marker)) == 2)
    resp.run_forever(timeout=0.5)  # the client's own deadline passes
    assert resp.is_open()
    resp.close()
    assert wait_until_none_left_with_argument(marker)
    record = wait_for(lambda: kube_cluster.execs[0].finished and kube_cluster.execs[0])
    assert record.client_closed and record.exit_code is None


def test_execs_share_the_container_pid_namespace(kube_cluster: Cluster) -> None:
    """A process group started by one exec can be killed by the next (the runtime's deadline)."""
    running_pod(kube_cluster)
    marker = unique_seconds(60)
    started = exec_in(
        kube_cluster,
        "runner",
        ["sh", "-c", f"setsid sleep {marker} >/dev/null 2>&1 & echo $!"],
    )
    pid = started.read_stdout().strip().decode()
    assert started.returncode == 0 and host_processes_with_argument(marker)
    killed = exec_in(kube_cluster, "runner", ["kill", "-KILL", "--", f"-{pid}"])
    assert killed.returncode == 0, killed.read_stderr()
    assert wait_until_none_left_with_argument(marker)


def test_many_concurrent_execs(kube_cluster: Cluster) -> None:
    running_pod(kube_cluster)
    results: dict[int, tuple[bytes, int | None]] = {}

    def one(index: int) -> None:
        resp = exec_in(kube_cluster, "runner", ["sh", "-c", f"sleep 0.2; echo {index}"])
        results[index] = (resp.read_stdout(), resp.returncode)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {i: (f"{i}\n".encode(), 0) for i in range(24)}


def test_exec_refused_when_the_pod_is_not_running(kube_cluster: Cluster) -> None:
    kube_cluster.readiness.never_ready = True
    core(kube_cluster).create_namespaced_pod(NS, runner_pod("pending"))
    with pytest.raises(ApiException) as refused:
        stream(
            core(kube_cluster).connect_get_namespaced_pod_exec,
            "pending",
            NS,
            command=["true"],
            stdin=False,
            stdout=True,
            stderr=True,
            tty=False,
        )
    assert "400" in str(refused.value.reason) and "container not found" in str(refused.value.reason)


def test_deleting_a_pod_ends_its_execs_and_removes_its_files(kube_cluster: Cluster) -> None:
    running_pod(kube_cluster)
    marker = unique_seconds(60)
    done: dict[str, int | None] = {}

    def long_exec() -> None:
        done["code"] = exec_in(kube_cluster, "runner", ["sleep", marker]).returncode

    thread = threading.Thread(target=long_exec)
    thread.start()
    wait_for(lambda: host_processes_with_argument(marker))
    root = kube_cluster.pod_root(NS, "runner")
    assert root.is_dir()
    core(kube_cluster).delete_namespaced_pod("runner", NS)
    thread.join(30)
    assert done["code"] == 137
    assert wait_until_none_left_with_argument(marker)
    assert not root.exists()
    with pytest.raises(ApiException) as gone:
        core(kube_cluster).read_namespaced_pod("runner", NS)
    assert gone.value.status == 404


# --- deployments --------------------------------------------------------------------------


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


def test_deployment_rollout_status_and_restart(kube_cluster: Cluster) -> None:
    api = apps(kube_cluster)
    api.create_namespaced_deployment(NS, deployment("web", replicas=2))
    made = api.read_namespaced_deployment("web", NS)
    assert made.status.observed_generation == made.metadata.generation == 1
    assert (
        made.status.replicas,
        made.status.updated_replicas,
        made.status.ready_replicas,
        made.status.available_replicas,
    ) == (2, 2, 2, 2)
    restart = {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}
        }
    }
    api.patch_namespaced_deployment("web", NS, restart)
    restarted = api.read_namespaced_deployment("web", NS)
    assert restarted.metadata.generation == 2 and restarted.status.observed_generation == 2

    api.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    assert api.read_namespaced_deployment_scale("web", NS).spec.replicas == 3
    assert api.read_namespaced_deployment("web", NS).status.ready_replicas == 3

    kube_cluster.rollout.stuck = True
    api.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 1}})
    stuck = api.read_namespaced_deployment("web", NS)
    assert stuck.status.observed_generation == stuck.metadata.generation
    assert stuck.status.updated_replicas is None  # zero: left out, as on a real server


def test_running_cluster_stops_what_its_pods_run(tmp_path: Path) -> None:
    marker = unique_seconds(60)
    with running_cluster(tmp_path / "kube") as cluster:
        manifest = runner_pod("p")
        manifest["spec"]["containers"][0]["command"] = ["sleep", marker]
        core(cluster).create_namespaced_pod(NS, manifest)
        pod_phase(cluster, "p", "Running")
        assert host_processes_with_argument(marker)
    assert wait_until_none_left_with_argument(marker)
