"""The k8s.* tools (contract §4.2, §4.3, §5.1, §12 test 41, §13) through the executor, against the
stand-in Kubernetes API server of `tests/support/kube` (fixture `kube_cluster`): the official
client talks HTTP to it as to an API server, with the kubeconfig the tools are configured with;
the session manager's side (listing, the delivery gate, test 41) through the in-process app.

What the stand-in does not model, so these tests do not show it: authentication and RBAC (every
request is allowed: the Roles are checked structurally against contract §11 at the end of this
file and in tests/deploy/test_rbac.py, and an API server's refusals come from `StubApi`),
admission (no webhooks, no defaulting beyond server-set metadata), scheduling and image pulls
(pods run this machine's tools; most tests keep them Pending), controllers (a Deployment gets no
ReplicaSets or pods: the stand-in sets its status so that a rollout completes, or keeps it
incomplete with `rollout.stuck`), resourceVersion conflicts (one is injected), and a server that
does not answer (a silent socket here).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from serve_app.api.app import create_app
from serve_app.config import Settings
from serve_app.domain.capability import ArgField, NamedField
from serve_app.domain.errors import ErrorCode, ServiceError
from serve_app.domain.models import Principal, Runtime, Session, utcnow
from serve_app.execution.executor import ExecutionService
from serve_app.tools import ToolRegistry, build_registry
from serve_app.tools.base import Tool
from serve_app.tools.family import Toolbox
from serve_app.tools.k8s import CLIENT_KEY, PERMISSIONS, resolve_namespace
from serve_app.tools.k8s_delivery import (
    MANIFEST_MAX_BYTES,
    RESTARTED_AT,
    rollout_of,
    wait_for_rollout,
)
from serve_app.wiring import build_executor, build_session_service, build_stores
from tests.deploy.manifests import NAMESPACE as DEPLOY_NAMESPACE
from tests.deploy.manifests import find, of_kind
from tests.support.execution import fails, ok, run
from tests.support.kube import Cluster

NS = "team-a"
OTHER_NS = "team-b"
READ_TOOLS = [
    "k8s.get_deployments",
    "k8s.get_images",
    "k8s.get_logs",
    "k8s.get_pods",
    "k8s.get_services",
]
DELIVERY_TOOLS = ["k8s.apply_manifest", "k8s.restart_deployment", "k8s.rollout_status"]
K8S_TOOLS = sorted(READ_TOOLS + DELIVERY_TOOLS)
SECRET_VALUE = "hunter2-do-not-leak"
PRINT_LINES = 'i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; sleep 600'


# sessions and executors --------------------------------------------------------------------------


def cluster_session(
    namespace: str = NS,
    *,
    roles: list[str] | None = None,
    metadata: dict[str, str] | None = None,
    session_id: str = "sess-k8s",
) -> Session:
    """A session on the kubernetes runtime (its runner pod is not needed by cluster tools)."""
    now = utcnow()
    return Session(
        id=session_id,
        workspace_path="/workspace/repo",
        runtime=Runtime(
            kind="kubernetes",
            namespace=namespace,
            pod_name=f"ws-{session_id}",
            container="runner",
            workdir="/workspace/repo",
        ),
        allowed_paths=["."],
        principal=Principal(tenant_id="tenant", actor_id="agent", roles=roles or ["devops"]),
        metadata=metadata,
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


def local_session(workspace: Path) -> Session:
    session = cluster_session()
    return session.model_copy(
        update={"runtime": Runtime(kind="local"), "workspace_path": str(workspace)}
    )


def executor_for(
    settings: Settings, adjust: Callable[[Tool], Tool] | None = None
) -> ExecutionService:
    """An executor replica as `build_executor` makes one (the k8s tools and the runner-pod
    runtime share the replica's API client), its tools changed by `adjust` when given."""
    toolbox = Toolbox(settings=settings)
    registry = build_registry(toolbox=toolbox)
    if adjust is not None:
        tools = [registry.get(capability.name) for capability in registry.capabilities()]
        registry = ToolRegistry(adjust(tool) for tool in tools if tool is not None)

    def kube() -> Any:
        from serve_app.runtime.kube_api import api_client

        return toolbox.clients.get(CLIENT_KEY, lambda: api_client(settings))

    return ExecutionService(registry, clients=toolbox.clients, kube=kube)


@pytest.fixture
def kubeconfig(kube_cluster: Cluster, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    kube_cluster.write_kubeconfig(path)
    return path


@pytest.fixture
def k8s_settings(settings: Settings, kubeconfig: Path) -> Settings:
    return settings.model_copy(
        update={
            "kubeconfig": str(kubeconfig),
            "k8s_namespace": "swe-ai-fleet",
            "enable_k8s_delivery_tools": True,
        }
    )


@pytest.fixture
def k8s(k8s_settings: Settings) -> Iterator[ExecutionService]:
    service = executor_for(k8s_settings)
    yield service
    asyncio.run(service.aclose())


# the emulator's objects --------------------------------------------------------------------------


class Api:
    """Seeds and reads objects in the emulator with the official client, as a user of the
    cluster would (not through the tools)."""

    def __init__(self, cluster: Any) -> None:
        self.client = cluster.api_client()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        params = self.client.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        answer = self.client.call_api(*params, _request_timeout=10)
        data = answer.read()
        return answer.status, json.loads(data) if data else None

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, created = self.call("POST", path, body)
        assert status in (200, 201), (status, created)
        return dict(created)

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("GET", path)

    def namespace(self, name: str) -> None:
        status, _ = self.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        assert status in (200, 201, 409)

    def pod(
        self,
        namespace: str,
        name: str,
        images: dict[str, str],
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return self.create(
            f"/api/v1/namespaces/{namespace}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                "spec": {
                    "containers": [
                        {
                            "name": container,
                            "image": image,
                            "env": [{"name": "PASSWORD", "value": SECRET_VALUE}],
                        }
                        for container, image in images.items()
                    ]
                },
            },
        )

    def wait_for_log(self, namespace: str, pod: str, ending: str, timeout: float = 30) -> None:
        """Until the pod's log ends with `ending`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            params = self.client.param_serialize(
                method="GET",
                resource_path=f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                header_params={"Accept": "text/plain"},
                auth_settings=["BearerToken"],
            )
            answer = self.client.call_api(*params, _request_timeout=10)
            if answer.status == 200 and answer.read().decode().endswith(ending):
                return
            time.sleep(0.1)
        raise AssertionError(f"pod {namespace}/{pod} did not log {ending!r}")

    def deployment(self, namespace: str, name: str, image: str = "nginx:1.27") -> dict[str, Any]:
        return self.create(
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            deployment_manifest(name, namespace, image),
        )


def deployment_manifest(
    name: str, namespace: str | None = None, image: str = "nginx:1.27"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app": name}}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "env": [{"name": "TOKEN", "value": SECRET_VALUE}],
                        }
                    ]
                },
            },
        },
    }


@pytest.fixture
def api(kube_cluster: Cluster) -> Api:
    """The emulator with namespaces team-a and team-b; pods stay Pending unless a test lets
    them start (`kube_cluster.readiness.never_ready = False`): a started pod runs processes."""
    kube_cluster.readiness.never_ready = True
    seeded = Api(kube_cluster)
    seeded.namespace(NS)
    seeded.namespace(OTHER_NS)
    return seeded


# stand-ins for a refusing or silent API server ---------------------------------------------------


class StubApi:
    """An HTTP server answering every request with one status and a Kubernetes `Status` body."""

    def __init__(self, status: int, message: str) -> None:
        body = json.dumps(
            {"kind": "Status", "status": "Failure", "message": message, "code": status}
        )

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_GET

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stub", "cluster": {"server": server}}],
                "users": [{"name": "stub", "user": {"token": "stub-token"}}],
                "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
                "current-context": "stub",
            }
        )
    )
    return path


def stub_executor(settings: Settings, tmp_path: Path, server: str) -> ExecutionService:
    kubeconfig = write_kubeconfig(tmp_path / "stub-kubeconfig", server)
    return executor_for(
        settings.model_copy(
            update={"kubeconfig": str(kubeconfig), "enable_k8s_delivery_tools": True}
        )
    )


# the catalog -------------------------------------------------------------------------------------

# Contract §4.2: scope / risk / approval / side effects / idempotency, timeout s / output KB,
# input names (required) with bounds, output names, policy metadata.
CATALOG: dict[str, dict[str, Any]] = {
    "k8s.get_pods": {
        "meta": ("cluster", "low", False, "none", "guaranteed", 30, 2048),
        "inputs": {
            "namespace": None,
            "label_selector": None,
            "field_selector": None,
            "max_pods": (1, 500),
            "include_containers": None,
            "include_labels": None,
        },
        "required": [],
        "outputs": "namespace label_selector field_selector source count truncated "
        "include_containers include_labels pods summary output exit_code",
        "args": [],
    },
    "k8s.get_services": {
        "meta": ("cluster", "low", False, "none", "guaranteed", 30, 2048),
        "inputs": {
            "namespace": None,
            "label_selector": None,
            "field_selector": None,
            "max_services": (1, 500),
            "include_labels": None,
        },
        "required": [],
        "outputs": "namespace label_selector field_selector source count truncated "
        "include_labels services summary output exit_code",
        "args": [],
    },
    "k8s.get_deployments": {
        "meta": ("cluster", "low", False, "none", "guaranteed", 30, 2048),
        "inputs": {
            "namespace": None,
            "label_selector": None,
            "field_selector": None,
            "max_deployments": (1, 500),
            "include_containers": None,
            "include_labels": None,
        },
        "required": [],
        "outputs": "namespace label_selector field_selector source count truncated "
        "include_containers include_labels deployments summary output exit_code",
        "args": [],
    },
    "k8s.get_images": {
        "meta": ("cluster", "low", False, "none", "guaranteed", 45, 2048),
        "inputs": {
            "namespace": None,
            "label_selector": None,
            "field_selector": None,
            "max_images": (1, 1000),
            "include_workloads": None,
        },
        "required": [],
        "outputs": "namespace label_selector field_selector source count truncated "
        "include_workloads images summary output exit_code",
        "args": [],
    },
    "k8s.get_logs": {
        "meta": ("cluster", "low", False, "none", "guaranteed", 30, 2048),
        "inputs": {
            "namespace": None,
            "pod_name": None,
            "container": None,
            "tail_lines": (1, 10000),
            "since_seconds": (0, 604800),
            "previous": None,
            "max_bytes": (1024, 2097152),
        },
        "required": ["pod_name"],
        "outputs": "namespace pod_name container tail_lines since_seconds previous source bytes "
        "line_count truncated logs summary output exit_code",
        "args": [],
    },
    "k8s.apply_manifest": {
        "meta": ("cluster", "medium", True, "reversible", "best-effort", 90, 2048),
        "inputs": {"namespace": None, "manifest": None, "dry_run": None, "max_objects": (1, 20)},
        "required": ["manifest"],
        "outputs": "namespace dry_run applied_count created_count updated_count resources "
        "summary output exit_code",
        "args": [ArgField(field="manifest", max_length=262144)],
    },
    "k8s.rollout_status": {
        "meta": ("cluster", "medium", True, "none", "guaranteed", 120, 1024),
        "inputs": {
            "namespace": None,
            "deployment_name": None,
            "timeout_seconds": (1, 1800),
            "poll_interval_ms": (100, 10000),
        },
        "required": ["deployment_name"],
        "outputs": "namespace deployment_name status duration_ms rollout summary output exit_code",
        "args": [
            ArgField(
                field="deployment_name",
                max_length=253,
                deny_characters=[" ", "\n", "\r", "/", "\\", ";", "|", "&"],
            )
        ],
    },
    "k8s.restart_deployment": {
        "meta": ("cluster", "medium", True, "reversible", "best-effort", 180, 1024),
        "inputs": {
            "namespace": None,
            "deployment_name": None,
            "wait_for_rollout": None,
            "timeout_seconds": (1, 1800),
            "poll_interval_ms": (100, 10000),
        },
        "required": ["deployment_name"],
        "outputs": "namespace deployment_name restarted_at previous_restarted_at generation "
        "observed_generation rollout_status rollout summary output exit_code",
        "args": [
            ArgField(
                field="deployment_name",
                max_length=253,
                deny_characters=[" ", "\n", "\r", "/", "\\", ";", "|", "&"],
            )
        ],
    },
}


def capabilities(settings: Settings) -> dict[str, Any]:
    registry = build_registry(toolbox=Toolbox.for_catalog(settings))
    return {c.name: c for c in registry.capabilities() if c.name.startswith("k8s.")}


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_tool_declares_the_contract_metadata(settings: Settings, name: str) -> None:
    capability = capabilities(settings)[name]
    expected = CATALOG[name]
    scope, risk, approval, effects, idempotency, timeout, output_kb = expected["meta"]
    assert capability.scope == scope
    assert capability.risk_level == risk
    assert capability.requires_approval is approval
    assert capability.side_effects == effects
    assert capability.idempotency == idempotency
    assert capability.constraints.timeout_seconds == timeout
    assert capability.constraints.output_limit_kb == output_kb
    assert capability.constraints.network is False
    schema = capability.input_schema
    assert sorted(schema["properties"]) == sorted(expected["inputs"])
    assert schema["required"] == expected["required"]
    for field, bounds in expected["inputs"].items():
        spec = schema["properties"][field]
        if bounds is not None:
            assert (spec["minimum"], spec["maximum"]) == bounds, field
            assert spec["type"] == "integer"
    assert sorted(capability.output_schema["properties"]) == sorted(expected["outputs"].split())
    assert capability.policy.namespace_fields == [NamedField(field="namespace")]
    assert capability.policy.arg_fields == expected["args"]
    assert capability.policy.path_fields == []
    assert "principal must have cluster-scope access" in capability.preconditions


def test_the_delivery_gate_is_a_precondition_of_the_delivery_tools_only(
    settings: Settings,
) -> None:
    off = capabilities(settings.model_copy(update={"enable_k8s_delivery_tools": False}))
    on = capabilities(settings.model_copy(update={"enable_k8s_delivery_tools": True}))
    disabled = "k8s delivery tools are disabled by configuration"
    assert sorted(n for n, c in off.items() if disabled in c.preconditions) == DELIVERY_TOOLS
    assert not [n for n, c in on.items() if disabled in c.preconditions]


def test_reading_the_catalog_makes_no_kubernetes_client(settings: Settings) -> None:
    """The session manager reads capabilities with a toolbox that refuses to make clients."""
    assert sorted(capabilities(settings)) == K8S_TOOLS


# sessions: hidden and denied on local sessions, the delivery gate (HTTP) ------------------------


def http_client(settings: Settings, sessions: list[Session]) -> TestClient:
    """The in-process app with `sessions` stored as they would be by the backend that made
    them (a kubernetes session's runner pod is not needed by the cluster tools)."""
    stores = build_stores(settings)
    for session in sessions:
        asyncio.run(stores.sessions.put(session))
    service = build_session_service(settings, build_executor(settings), stores=stores)
    return TestClient(create_app(service))


def tool_names(client: TestClient, session_id: str) -> list[str]:
    response = client.get(f"/v1/sessions/{session_id}/tools")
    assert response.status_code == 200, response.text
    return [tool["name"] for tool in response.json()["tools"]]


def invoke(
    client: TestClient, session_id: str, tool: str, args: dict[str, Any], approved: bool
) -> tuple[int, dict[str, Any]]:
    response = client.post(
        f"/v1/sessions/{session_id}/tools/{tool}/invoke", json={"args": args, "approved": approved}
    )
    return response.status_code, response.json()


VALID_ARGS = {
    "k8s.get_logs": {"pod_name": "web-1"},
    "k8s.apply_manifest": {"manifest": "apiVersion: v1"},
    "k8s.rollout_status": {"deployment_name": "web"},
    "k8s.restart_deployment": {"deployment_name": "web"},
}


def test_a_local_session_neither_lists_nor_runs_cluster_tools(client: TestClient) -> None:
    """Contract §12 test 41: the local runtime hides k8s.* and denies a direct invocation with
    `policy_denied` naming the kubernetes runtime, even approved; fs.list still works."""
    created = client.post(
        "/v1/sessions",
        json={
            "principal": {
                "tenant_id": "tenant-a",
                "actor_id": "agent-1",
                "roles": ["devops", "platform_admin"],
            }
        },
    )
    assert created.status_code == 201, created.text
    session_id = created.json()["session"]["id"]
    names = tool_names(client, session_id)
    assert "fs.list" in names
    assert not [name for name in names if name.startswith("k8s.")]
    for tool in K8S_TOOLS:
        status, body = invoke(client, session_id, tool, VALID_ARGS.get(tool, {}), True)
        assert status == 403, (tool, body)
        assert body["error"]["code"] == "policy_denied"
        assert "kubernetes runtime" in body["error"]["message"]
        assert body["invocation"]["status"] == "denied"
    status, body = invoke(client, session_id, "fs.list", {"path": "."}, False)
    assert status == 200, body


@pytest.mark.parametrize("enabled", [False, True])
def test_the_delivery_gate_hides_and_denies_the_delivery_tools(
    settings: Settings, enabled: bool
) -> None:
    """Contract §5.1 step 2 and §1.5: with WORKSPACE_ENABLE_K8S_DELIVERY_TOOLS off, a kubernetes
    session lists the read tools only and a delivery tool is denied 403 even approved; on, the
    delivery tools are listed and reach the policy engine (approval required: 428)."""
    gated = settings.model_copy(update={"enable_k8s_delivery_tools": enabled})
    session = cluster_session()
    with http_client(gated, [session]) as client:
        listed = [name for name in tool_names(client, session.id) if name.startswith("k8s.")]
        assert listed == (K8S_TOOLS if enabled else READ_TOOLS)
        for tool in DELIVERY_TOOLS:
            status, body = invoke(client, session.id, tool, VALID_ARGS[tool], approved=not enabled)
            assert body["invocation"]["status"] == "denied"
            if enabled:
                assert status == 428, body
                assert body["error"]["code"] == "approval_required"
            else:
                assert status == 403, body
                assert body["error"]["code"] == "policy_denied"
                assert (
                    body["error"]["message"] == "k8s delivery tools are disabled by configuration"
                )


def test_cluster_tools_need_a_devops_or_platform_admin_role(settings: Settings) -> None:
    developer = cluster_session(roles=["developer"], session_id="sess-dev")
    with http_client(settings, [developer]) as client:
        assert not [n for n in tool_names(client, developer.id) if n.startswith("k8s.")]
        status, body = invoke(client, developer.id, "k8s.get_pods", {}, True)
        assert status == 403
        assert body["error"]["message"] == "principal roles cannot access tool scope"


def test_the_engine_checks_namespace_and_deployment_name_arguments(settings: Settings) -> None:
    gated = settings.model_copy(update={"enable_k8s_delivery_tools": True})
    session = cluster_session(metadata={"allowed_k8s_namespaces": "team-a,sandbox-*"})
    with http_client(gated, [session]) as client:
        status, body = invoke(
            client, session.id, "k8s.get_pods", {"namespace": "kube-system"}, False
        )
        assert (status, body["error"]["message"]) == (403, "namespace not allowed")
        status, body = invoke(
            client, session.id, "k8s.rollout_status", {"deployment_name": "a/b"}, True
        )
        assert (status, body["error"]["message"]) == (403, "argument not allowed by policy")
        status, body = invoke(
            client,
            session.id,
            "k8s.apply_manifest",
            {"manifest": "x" * (MANIFEST_MAX_BYTES + 1)},
            True,
        )
        assert (status, body["error"]["message"]) == (403, "argument not allowed by policy")


# the handlers' own guards ------------------------------------------------------------------------


async def test_handlers_refuse_a_local_session_and_a_replica_with_the_gate_off(
    settings: Settings, workspace: Path
) -> None:
    """For a caller that reaches the executor directly; no API request is made (the API server
    named does not exist)."""
    kubeconfig = write_kubeconfig(workspace.parent / "kubeconfig", "http://127.0.0.1:9")
    service = executor_for(settings.model_copy(update={"kubeconfig": str(kubeconfig)}))
    try:
        result = await fails(
            service, local_session(workspace), "k8s.get_pods", {}, ErrorCode.POLICY_DENIED
        )
        assert result.error is not None
        assert result.error.message == "tool requires kubernetes runtime"
        result = await fails(
            service,
            cluster_session(),
            "k8s.rollout_status",
            {"deployment_name": "web"},
            ErrorCode.POLICY_DENIED,
        )
        assert result.error is not None
        assert result.error.message == "k8s delivery tools are disabled by configuration"
    finally:
        await service.aclose()


# read tools --------------------------------------------------------------------------------------


async def test_get_pods_lists_sorted_bounded_and_without_secrets(
    api: Api, k8s: ExecutionService
) -> None:
    for name in ("web-2", "web-1", "db-0"):
        api.pod(
            NS, name, {"app": "nginx:1.27", "sidecar": "envoy:1.30"}, {"app": name.split("-")[0]}
        )
    api.pod(OTHER_NS, "elsewhere", {"app": "busybox:1.36"})
    session = cluster_session()

    listed = await ok(k8s, session, "k8s.get_pods", {})
    assert [pod["name"] for pod in listed["pods"]] == ["db-0", "web-1", "web-2"]
    assert listed["namespace"] == NS, "the session runtime's namespace by default"
    assert (listed["count"], listed["truncated"], listed["source"]) == (3, False, "k8s_sdk")
    assert listed["summary"] == listed["output"] == f"listed 3 pods from namespace {NS}"
    assert listed["exit_code"] == 0
    first = listed["pods"][0]
    assert first["total_containers"] == 2
    assert "labels" not in first and "containers" not in first

    selected = await ok(
        k8s, session, "k8s.get_pods", {"label_selector": "app=web", "include_labels": True}
    )
    assert [pod["name"] for pod in selected["pods"]] == ["web-1", "web-2"]
    assert selected["pods"][0]["labels"] == {"app": "web"}
    assert selected["label_selector"] == "app=web"

    capped = await ok(k8s, session, "k8s.get_pods", {"max_pods": 2, "include_containers": True})
    assert [pod["name"] for pod in capped["pods"]] == ["db-0", "web-1"]
    assert (capped["count"], capped["truncated"]) == (2, True)
    containers = capped["pods"][0]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("app", "nginx:1.27"),
        ("sidecar", "envoy:1.30"),
    ]
    assert set(containers[0]) == {"name", "image", "ready", "restart_count", "state"}

    other = await ok(
        k8s, session, "k8s.get_pods", {"namespace": OTHER_NS, "include_containers": True}
    )
    assert [pod["name"] for pod in other["pods"]] == ["elsewhere"]
    for output in (listed, selected, capped, other):
        assert SECRET_VALUE not in json.dumps(output), "environment values are never reported"


async def test_get_services_reports_ports_and_selectors(api: Api, k8s: ExecutionService) -> None:
    api.create(
        f"/api/v1/namespaces/{NS}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "labels": {"tier": "front"}},
            "spec": {
                "selector": {"app": "web"},
                "ports": [
                    {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
                    {"name": "http", "port": 80, "targetPort": "http"},
                ],
            },
        },
    )
    api.create(
        f"/api/v1/namespaces/{NS}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api"},
            "spec": {"ports": [{"port": 8080}]},
        },
    )
    listed = await ok(k8s, cluster_session(), "k8s.get_services", {"include_labels": True})
    assert [s["name"] for s in listed["services"]] == ["api", "web"]
    web = listed["services"][1]
    assert web["selector"] == {"app": "web"}
    assert web["labels"] == {"tier": "front"}
    assert [(p["name"], p["port"], p["target_port"]) for p in web["ports"]] == [
        ("http", 80, "http"),
        ("https", 443, "8443"),
    ]
    one = await ok(k8s, cluster_session(), "k8s.get_services", {"max_services": 1})
    assert (one["count"], one["truncated"], one["summary"]) == (
        1,
        True,
        f"listed 1 services from namespace {NS}",
    )


async def test_get_deployments_reports_replicas_and_containers(
    api: Api, k8s: ExecutionService
) -> None:
    api.deployment(NS, "web", "nginx:1.27")
    api.deployment(NS, "api", "ghcr.io/acme/api:2")
    listed = await ok(
        k8s,
        cluster_session(),
        "k8s.get_deployments",
        {"include_containers": True, "include_labels": True},
    )
    assert [d["name"] for d in listed["deployments"]] == ["api", "web"]
    web = listed["deployments"][1]
    assert web["replicas"] == 2
    assert web["selector"] == {"app": "web"}
    assert web["labels"] == {"app": "web"}
    assert web["containers"] == [{"name": "app", "image": "nginx:1.27"}]
    assert SECRET_VALUE not in json.dumps(listed)
    selected = await ok(
        k8s, cluster_session(), "k8s.get_deployments", {"label_selector": "app=api"}
    )
    assert [d["name"] for d in selected["deployments"]] == ["api"]
    assert "containers" not in selected["deployments"][0]


async def test_get_images_aggregates_by_use(api: Api, k8s: ExecutionService) -> None:
    api.pod(NS, "a", {"app": "nginx:1.27", "log": "fluent-bit:3"})
    api.pod(NS, "b", {"app": "nginx:1.27"})
    api.pod(NS, "c", {"app": "nginx:1.27", "proxy": "envoy:1.30"})
    listed = await ok(k8s, cluster_session(), "k8s.get_images", {"include_workloads": True})
    assert [(i["image"], i["occurrences"], i["pod_count"]) for i in listed["images"]] == [
        ("nginx:1.27", 3, 3),
        ("envoy:1.30", 1, 1),
        ("fluent-bit:3", 1, 1),
    ]
    assert listed["images"][0]["pods"] == ["a", "b", "c"]
    assert listed["images"][0]["workloads"] == ["a/app", "b/app", "c/app"]
    top = await ok(k8s, cluster_session(), "k8s.get_images", {"max_images": 1})
    assert (top["count"], top["truncated"]) == (1, True)
    assert "pods" not in top["images"][0]


async def test_get_logs_reads_text_bounded(
    api: Api, k8s: ExecutionService, kube_cluster: Cluster
) -> None:
    kube_cluster.readiness.never_ready = False
    api.create(
        f"/api/v1/namespaces/{NS}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1"},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox:1.36",
                        "command": ["sh", "-c", PRINT_LINES],
                    }
                ]
            },
        },
    )
    api.wait_for_log(NS, "web-1", "line 1999\n")
    logs = await ok(k8s, cluster_session(), "k8s.get_logs", {"pod_name": "web-1", "tail_lines": 10})
    assert logs["logs"].splitlines() == [f"line {i}" for i in range(1990, 2000)]
    assert (logs["line_count"], logs["truncated"], logs["tail_lines"]) == (10, False, 10)
    assert logs["bytes"] == len(logs["logs"].encode())
    assert logs["summary"] == f"retrieved logs for pod {NS}/web-1"

    capped = await ok(
        k8s,
        cluster_session(),
        "k8s.get_logs",
        {"pod_name": "web-1", "tail_lines": 2000, "max_bytes": 1024},
    )
    assert capped["truncated"] is True
    assert capped["bytes"] <= 1024
    assert capped["logs"].startswith("line ")

    await fails(
        k8s, cluster_session(), "k8s.get_logs", {"pod_name": "missing"}, ErrorCode.NOT_FOUND
    )
    await fails(
        k8s, cluster_session(), "k8s.get_logs", {"pod_name": "Bad_Name"}, ErrorCode.INVALID_ARGUMENT
    )


async def test_lists_fit_the_output_limit(api: Api, k8s_settings: Settings) -> None:
    """A listing larger than the tool's output limit keeps its leading items (`truncated`)."""
    for index in range(40):
        api.pod(
            NS,
            f"pod-{index:02d}",
            {"app": "nginx:1.27"},
            {f"label-{n}": "x" * 40 for n in range(5)},
        )

    def small(tool: Tool) -> Tool:
        if tool.name != "k8s.get_pods":
            return tool
        limits = tool.capability.constraints.model_copy(update={"output_limit_kb": 4})
        capability = tool.capability.model_copy(update={"constraints": limits})
        return Tool(capability, tool.handler, tool.arguments)

    service = executor_for(k8s_settings, small)
    try:
        listed = await ok(service, cluster_session(), "k8s.get_pods", {"include_labels": True})
    finally:
        await service.aclose()
    assert 0 < listed["count"] < 40
    assert listed["truncated"] is True
    assert len(json.dumps(listed, separators=(",", ":"))) <= 4 * 1024


# the namespace rule ------------------------------------------------------------------------------


async def test_namespace_defaults_and_the_allowlist_on_the_resolved_namespace(
    api: Api, k8s: ExecutionService
) -> None:
    api.pod(NS, "web-1", {"app": "nginx:1.27"})
    # The engine checks only an explicit argument; the handler checks what it resolved.
    restricted = cluster_session(metadata={"allowed_k8s_namespaces": "sandbox-*"})
    result = await fails(k8s, restricted, "k8s.get_pods", {}, ErrorCode.POLICY_DENIED)
    assert result.error is not None and result.error.message == f"namespace not allowed: {NS}"
    allowed = cluster_session(metadata={"allowed_k8s_namespaces": "team-*"})
    assert (await ok(k8s, allowed, "k8s.get_pods", {}))["count"] == 1
    await fails(
        k8s,
        cluster_session(),
        "k8s.get_pods",
        {"namespace": "Not_A_Label"},
        ErrorCode.INVALID_ARGUMENT,
    )


# k8s.apply_manifest ------------------------------------------------------------------------------


def manifest(*documents: dict[str, Any]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings"},
    "data": {"mode": "fast"},
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
}


async def test_apply_manifest_creates_then_updates(api: Api, k8s: ExecutionService) -> None:
    session = cluster_session()
    text = manifest(CONFIGMAP, SERVICE, deployment_manifest("web"))
    result = await run(k8s, session, "k8s.apply_manifest", {"manifest": text})
    assert result.error is None, result.error
    applied = result.output
    assert (applied["applied_count"], applied["created_count"], applied["updated_count"]) == (
        3,
        3,
        0,
    )
    assert applied["resources"] == [
        {
            "api_version": "v1",
            "kind": "ConfigMap",
            "name": "settings",
            "namespace": NS,
            "operation": "created",
        },
        {
            "api_version": "v1",
            "kind": "Service",
            "name": "web",
            "namespace": NS,
            "operation": "created",
        },
        {
            "api_version": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "namespace": NS,
            "operation": "created",
        },
    ]
    assert applied["summary"] == f"applied 3 resources in namespace {NS}"
    assert [a.name for a in result.artifacts] == ["k8s-apply-manifest-report.json"]
    assert json.loads(result.artifacts[0].data) == applied
    status, stored = api.get(f"/api/v1/namespaces/{NS}/configmaps/settings")
    assert (status, stored["data"]) == (200, {"mode": "fast"})

    changed = {**CONFIGMAP, "data": {"mode": "safe"}}
    again = await ok(
        k8s,
        session,
        "k8s.apply_manifest",
        {"manifest": manifest(changed, SERVICE, deployment_manifest("web", NS))},
    )
    assert (again["created_count"], again["updated_count"]) == (0, 3)
    assert {r["operation"] for r in again["resources"]} == {"updated"}
    status, stored = api.get(f"/api/v1/namespaces/{NS}/configmaps/settings")
    assert stored["data"] == {"mode": "safe"}


async def test_apply_manifest_dry_run_stores_nothing(api: Api, k8s: ExecutionService) -> None:
    applied = await ok(
        k8s,
        cluster_session(),
        "k8s.apply_manifest",
        {"manifest": manifest(CONFIGMAP), "dry_run": True},
    )
    assert applied["dry_run"] is True
    assert applied["resources"][0]["operation"] == "created"
    assert applied["summary"] == f"validated (dry run) 1 resources in namespace {NS}"
    status, _ = api.get(f"/api/v1/namespaces/{NS}/configmaps/settings")
    assert status == 404


@pytest.mark.parametrize(
    ("documents", "code", "fragment"),
    [
        (
            [
                CONFIGMAP,
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "s"},
                    "stringData": {"password": SECRET_VALUE},
                },
            ],
            ErrorCode.POLICY_DENIED,
            "manifest kind not allowed: Secret",
        ),
        (
            [
                CONFIGMAP,
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "x"},
                },
            ],
            ErrorCode.POLICY_DENIED,
            "manifest kind not allowed: ClusterRole",
        ),
        (
            [CONFIGMAP, {**SERVICE, "metadata": {"name": "web", "namespace": OTHER_NS}}],
            ErrorCode.POLICY_DENIED,
            "manifest namespace must match requested namespace",
        ),
        (
            [{**CONFIGMAP, "apiVersion": "apps/v1"}],
            ErrorCode.INVALID_ARGUMENT,
            "apiVersion must be v1",
        ),
        (
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}],
            ErrorCode.INVALID_ARGUMENT,
            "metadata.name is required",
        ),
        (
            [{"apiVersion": "v1", "metadata": {"name": "x"}}],
            ErrorCode.INVALID_ARGUMENT,
            "kind is required",
        ),
    ],
)
async def test_apply_manifest_checks_every_object_before_sending_any(
    api: Api, k8s: ExecutionService, documents: list[dict[str, Any]], code: ErrorCode, fragment: str
) -> None:
    result = await fails(
        k8s, cluster_session(), "k8s.apply_manifest", {"manifest": manifest(*documents)}, code
    )
    assert result.error is not None
    assert fragment in result.error.message
    assert SECRET_VALUE not in result.error.message
    status, _ = api.get(f"/api/v1/namespaces/{NS}/configmaps/settings")
    assert status == 404, "nothing was applied"


@pytest.mark.usefixtures("api")
async def test_apply_manifest_limits(k8s: ExecutionService) -> None:
    session = cluster_session()
    many = manifest(*({**CONFIGMAP, "metadata": {"name": f"cm-{i}"}} for i in range(11)))
    result = await fails(
        k8s, session, "k8s.apply_manifest", {"manifest": many}, ErrorCode.INVALID_ARGUMENT
    )
    assert result.error is not None and "max_objects limit (10" in result.error.message
    twenty = manifest(*({**CONFIGMAP, "metadata": {"name": f"cm-{i}"}} for i in range(20)))
    assert (await ok(k8s, session, "k8s.apply_manifest", {"manifest": twenty, "max_objects": 20}))[
        "applied_count"
    ] == 20
    await fails(
        k8s,
        session,
        "k8s.apply_manifest",
        {"manifest": twenty, "max_objects": 21},
        ErrorCode.INVALID_ARGUMENT,
    )

    padded = manifest({**CONFIGMAP, "data": {"blob": "x" * MANIFEST_MAX_BYTES}})
    result = await fails(
        k8s, session, "k8s.apply_manifest", {"manifest": padded}, ErrorCode.INVALID_ARGUMENT
    )
    assert result.error is not None and "exceeds 262144 bytes" in result.error.message

    for bad, fragment in [
        ("kind: [unclosed", "not valid YAML/JSON"),
        ("- just\n- a list\n", "must be an object"),
        ("   \n", "manifest is required"),
        ("---\n---\n", "does not contain Kubernetes objects"),
    ]:
        result = await fails(
            k8s, session, "k8s.apply_manifest", {"manifest": bad}, ErrorCode.INVALID_ARGUMENT
        )
        assert result.error is not None and fragment in result.error.message, (bad, result.error)

    bomb = "a: &a [" + ",".join(["x" * 64] * 64) + "]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ",".join([f"*{previous}"] * 16) + "]\n"
    bomb += "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n"
    result = await fails(
        k8s, session, "k8s.apply_manifest", {"manifest": bomb}, ErrorCode.INVALID_ARGUMENT
    )
    assert result.error is not None and "expands too much" in result.error.message

    nested = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\nx: " + "[" * 100 + "]" * 100
    result = await fails(
        k8s, session, "k8s.apply_manifest", {"manifest": nested}, ErrorCode.INVALID_ARGUMENT
    )
    assert result.error is not None and "nests deeper than 64 levels" in result.error.message


async def test_apply_manifest_accepts_json_and_case_insensitive_kinds(
    api: Api, k8s: ExecutionService
) -> None:
    document = json.dumps(
        {**CONFIGMAP, "kind": "configmap", "metadata": {"name": "from-json", "namespace": NS}}
    )
    applied = await ok(k8s, cluster_session(), "k8s.apply_manifest", {"manifest": document})
    assert applied["resources"][0]["kind"] == "ConfigMap"
    status, stored = api.get(f"/api/v1/namespaces/{NS}/configmaps/from-json")
    assert status == 200 and stored["kind"] == "ConfigMap"


# rollouts and restarts ---------------------------------------------------------------------------


async def test_rollout_status_waits_for_a_complete_rollout(api: Api, k8s: ExecutionService) -> None:
    api.deployment(NS, "web")
    result = await run(
        k8s,
        cluster_session(),
        "k8s.rollout_status",
        {"deployment_name": "web", "poll_interval_ms": 100},
    )
    assert result.error is None, result.error
    status = result.output
    assert status["status"] == "completed"
    assert status["rollout"]["completed"] is True
    assert status["rollout"]["desired_replicas"] == 2
    assert status["rollout"]["available_replicas"] >= 2
    assert status["summary"] == f"deployment {NS}/web rollout is complete"
    assert status["duration_ms"] >= 0
    assert [a.name for a in result.artifacts] == ["k8s-rollout-status-report.json"]
    await fails(
        k8s,
        cluster_session(),
        "k8s.rollout_status",
        {"deployment_name": "missing"},
        ErrorCode.NOT_FOUND,
    )


async def test_rollout_status_times_out_with_the_last_state(
    api: Api, k8s: ExecutionService, kube_cluster: Cluster
) -> None:
    """A Deployment whose rollout never completes (the stand-in's `rollout.stuck`): `timeout`
    after timeout_seconds, with the last state."""
    kube_cluster.rollout.stuck = True
    api.deployment(NS, "stuck")
    started = time.monotonic()
    result = await fails(
        k8s,
        cluster_session(),
        "k8s.rollout_status",
        {"deployment_name": "stuck", "timeout_seconds": 1, "poll_interval_ms": 200},
        ErrorCode.TIMEOUT,
    )
    assert time.monotonic() - started < 10
    assert result.exit_code == 124
    assert result.output is not None
    assert result.output["status"] == "timeout"
    assert result.output["rollout"]["completed"] is False
    assert result.output["rollout"]["updated_replicas"] < 2
    assert result.error is not None and "timeout_seconds=1" in result.error.message


async def test_restart_deployment_sets_the_restart_annotation(
    api: Api, k8s: ExecutionService
) -> None:
    api.deployment(NS, "web")
    session = cluster_session()
    first = await ok(k8s, session, "k8s.restart_deployment", {"deployment_name": "web"})
    assert first["previous_restarted_at"] == ""
    assert first["rollout_status"] == "pending"
    assert "rollout" not in first
    status, live = api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/web")
    assert status == 200
    assert (
        live["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == first["restarted_at"]
    )
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27", (
        "the rest is kept"
    )

    second = await ok(
        k8s,
        session,
        "k8s.restart_deployment",
        {"deployment_name": "web", "wait_for_rollout": True, "poll_interval_ms": 100},
    )
    assert second["previous_restarted_at"] == first["restarted_at"]
    assert second["restarted_at"] != first["restarted_at"]
    assert second["rollout_status"] == "completed"
    assert second["rollout"]["completed"] is True
    assert second["summary"].startswith(f"restarted deployment {NS}/web; ")
    await fails(
        k8s, session, "k8s.restart_deployment", {"deployment_name": "missing"}, ErrorCode.NOT_FOUND
    )


class ScriptedKube:
    """Answers a rollout's polls with Deployments in turn (the last one repeated)."""

    def __init__(self, *deployments: dict[str, Any]) -> None:
        self.answers = list(deployments)
        self.polls = 0

    async def get_json(self, _ctx: Any, _path: str, _what: str) -> dict[str, Any]:
        self.polls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def deployment_state(**status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status}


PROGRESSING = {
    "observedGeneration": 2,
    "updatedReplicas": 1,
    "readyReplicas": 1,
    "availableReplicas": 1,
    "unavailableReplicas": 1,
}
DONE = {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
DEADLINE = {
    **PROGRESSING,
    "conditions": [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "web-1" has timed out progressing.',
        },
        {
            "type": "Available",
            "status": "False",
            "reason": "MinimumReplicasUnavailable",
            "message": "",
        },
    ],
}


async def test_a_rollout_completes_fails_or_times_out() -> None:
    """The wait's logic on scripted Deployment states (no API server)."""
    context = SimpleNamespace(remaining=lambda: 60.0)
    kube = ScriptedKube(deployment_state(**PROGRESSING), deployment_state(**DONE))
    rollout, state, message = await wait_for_rollout(kube, context, NS, "web", 10, 100)
    assert (state, kube.polls, rollout.completed) == ("completed", 2, True)
    assert message == f"deployment {NS}/web rollout is complete"

    kube = ScriptedKube(deployment_state(**DEADLINE))
    rollout, state, message = await wait_for_rollout(kube, context, NS, "web", 10, 100)
    assert (state, kube.polls) == ("failed", 1)
    assert "ProgressDeadlineExceeded: ReplicaSet" in message
    assert [c.type for c in rollout.conditions] == ["Available", "Progressing"]

    kube = ScriptedKube(deployment_state(**PROGRESSING))
    started = time.monotonic()
    rollout, state, message = await wait_for_rollout(kube, context, NS, "web", 1, 200)
    assert state == "timeout" and 0.9 < time.monotonic() - started < 3
    assert "timeout_seconds=1" in message and "1/2 updated" in message
    assert rollout.unavailable_replicas == 1

    deadline = time.monotonic() + 1.5
    short = SimpleNamespace(remaining=lambda: deadline - time.monotonic())
    kube = ScriptedKube(deployment_state(**PROGRESSING))
    rollout, state, message = await wait_for_rollout(kube, short, NS, "web", 1800, 100)
    assert state == "timeout" and "the tool's own time limit" in message
    assert deployment_state()["status"] == {}  # an empty status: nothing observed yet
    assert not rollout_of(deployment_state())[0].completed


async def test_a_write_conflict_is_retried(
    api: Api, k8s: ExecutionService, kube_cluster: Cluster
) -> None:
    """The stand-in keeps no resourceVersion conflicts; one is injected (409 on the first PUT):
    the restart reads the Deployment again and writes once more."""
    api.deployment(NS, "web")
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    assert kube_cluster.emulator is not None
    conflict = {
        "kind": "Status",
        "status": "Failure",
        "reason": "Conflict",
        "code": 409,
        "message": 'Operation cannot be fulfilled on deployments.apps "web": modified',
    }
    kube_cluster.emulator[f"put {path}"][:1] << 409 << conflict
    restarted = await ok(
        k8s, cluster_session(), "k8s.restart_deployment", {"deployment_name": "web"}
    )
    assert len(list(kube_cluster.emulator[f"put {path}"])) == 2
    _status, live = api.get(path)
    assert (
        live["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
        == restarted["restarted_at"]
    )


# errors: refusals, no answer, no configuration ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, ErrorCode.POLICY_DENIED),
        (401, ErrorCode.POLICY_DENIED),
        (404, ErrorCode.NOT_FOUND),
        (422, ErrorCode.INVALID_ARGUMENT),
        (500, ErrorCode.EXECUTION_FAILED),
        (504, ErrorCode.TIMEOUT),
    ],
)
async def test_api_errors_map_to_contract_codes(
    settings: Settings, tmp_path: Path, status: int, code: ErrorCode
) -> None:
    stub = StubApi(status, 'pods is forbidden: User "system:serviceaccount:x:y" cannot list')
    service = stub_executor(settings, tmp_path, stub.url)
    try:
        result = await fails(service, cluster_session(), "k8s.get_pods", {}, code)
        assert result.error is not None
        assert f"(HTTP {status})" in result.error.message
        assert "cannot list" in result.error.message
    finally:
        await service.aclose()
        stub.stop()


async def test_an_unreachable_api_fails_fast(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = stub_executor(settings, tmp_path, f"http://127.0.0.1:{port}")
    try:
        started = time.monotonic()
        result = await fails(
            service, cluster_session(), "k8s.get_deployments", {}, ErrorCode.EXECUTION_FAILED
        )
        assert time.monotonic() - started < 10
        assert result.error is not None and "unreachable" in result.error.message
    finally:
        await service.aclose()


async def test_a_silent_api_times_out_within_the_tool_deadline(
    settings: Settings, tmp_path: Path
) -> None:
    """The server accepts the connection and never answers: the read timeout (the tool's
    remaining time) ends the call with `timeout`, never a hang."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    service = stub_executor(settings, tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}")
    try:
        started = time.monotonic()
        result = await fails(
            service, cluster_session(), "k8s.get_services", {}, ErrorCode.TIMEOUT, timeout=3
        )
        assert time.monotonic() - started < 6
        assert result.exit_code == 124
    finally:
        await service.aclose()
        silent.close()


async def test_no_kubernetes_configuration_fails_naming_it(
    settings: Settings, tmp_path: Path
) -> None:
    """No kubeconfig and no in-cluster account: the call fails saying so — `unavailable` from
    the executor, which makes the session's runner-pod runtime with the same client before the
    tool runs, or `execution_failed` from the tool itself."""
    service = executor_for(settings.model_copy(update={"kubeconfig": str(tmp_path / "absent")}))
    try:
        result = await run(service, cluster_session(), "k8s.get_pods", {})
        assert result.error is not None
        assert result.error.code in (ErrorCode.UNAVAILABLE, ErrorCode.EXECUTION_FAILED)
        assert "not configured" in result.error.message
    finally:
        await service.aclose()


def test_the_namespace_falls_back_to_the_runtime_then_the_setting() -> None:
    def resolved(session: Session, requested: str = "") -> str:
        context = SimpleNamespace(session=session)
        return resolve_namespace(context, requested, "swe-ai-fleet")

    assert resolved(cluster_session(), "team-b") == "team-b"
    assert resolved(cluster_session()) == NS
    assert resolved(cluster_session(namespace="")) == "swe-ai-fleet"
    restricted = cluster_session(namespace="", metadata={"allowed_k8s_namespaces": "team-*"})
    with pytest.raises(ServiceError, match="namespace not allowed: swe-ai-fleet"):
        resolved(restricted)
    with pytest.raises(ServiceError, match="DNS-1123 label"):
        resolved(cluster_session(), "Team_A")


# RBAC: what the tools need against what deploy/ grants (contract §11) ---------------------------


def effective_grants(account: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) the Roles bound to `account` grant in the deploy namespace."""
    roles = {
        binding["roleRef"]["name"]
        for binding in of_kind("RoleBinding")
        if {"kind": "ServiceAccount", "name": account, "namespace": DEPLOY_NAMESPACE}
        in binding["subjects"]
    }
    granted = set()
    for name in roles:
        for rule in find("Role", name)["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.update((group, resource, verb) for verb in rule["verbs"])
    return granted


def test_the_runtime_account_runs_the_read_tools_and_runner_pods_but_cannot_deliver() -> None:
    runtime = effective_grants("workspace-runtime")
    for tool in READ_TOOLS:
        assert PERMISSIONS[tool] <= runtime, tool
    for verb in ("create", "get", "list", "delete"):
        assert ("", "pods", verb) in runtime
    assert ("", "pods/exec", "create") in runtime
    for tool in ("k8s.apply_manifest", "k8s.restart_deployment"):
        assert not PERMISSIONS[tool] <= runtime, tool
    for verb in ("create", "update", "patch", "delete"):
        assert ("apps", "deployments", verb) not in runtime


def test_the_delivery_account_runs_every_k8s_tool() -> None:
    delivery = effective_grants("workspace-delivery")
    for tool in K8S_TOOLS:
        assert PERMISSIONS[tool] <= delivery, tool
    for verb in ("create", "update", "patch"):
        assert ("apps", "deployments", verb) in delivery
