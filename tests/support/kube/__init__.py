"""A stand-in Kubernetes API server for tests: the official `kubernetes` client talks to it over
real HTTP (and WebSocket) on loopback.

    with running_cluster(tmp_path / "kube") as cluster:        # or the `kube_cluster` fixture
        core = kubernetes.client.CoreV1Api(cluster.api_client())
        settings = Settings(kubeconfig=str(cluster.write_kubeconfig(tmp_path / "kubeconfig")))

Built on PyPI `kmock` (its `KubernetesEmulator`: HTTP parsing, discovery of the bundled built-in
resources, an in-memory object store, watch streams), with what the backend needs in front:

- **Objects** (every built-in kind kmock bundles: pods, secrets, configmaps, services, events,
  namespaces, deployments, …): create (201; 409 `AlreadyExists`; `generateName`), get, list,
  PUT replace (404 when missing, as for most kinds on a real server), the four PATCH types —
  JSON patch, merge patch, strategic merge (lists of containers/env/volumes/ports merged by
  their key), server-side apply (`application/apply-patch+yaml`, `fieldManager` required; it
  creates a missing object, answering 201) —, delete, delete collection, `dryRun=All`.
  Missing objects answer 404 with a real `Status` body (`pods "x" not found`, reason NotFound).
  Server-set metadata: `uid`, `resourceVersion` (one cluster-wide counter), `creationTimestamp`,
  `generation` (bumped when anything but metadata/status changes). Names and labels are
  validated (422 Invalid, with the real messages), pods need containers with a name and image.
  Status changes only through `/status` on kinds that have it; `stringData` folds into `data`.
- **Lists and watches**: `labelSelector` (`a=b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
  `a notin (x,y)`), `fieldSelector` on the fields a real server indexes (others: 400),
  `limit`/`continue` paging; list items carry no kind/apiVersion (as on a real server). Watches
  honour selectors, `resourceVersion` and `timeoutSeconds`.
- **Pods, as a kubelet would run them** (`kubelet.py`): after `readiness.delay_seconds` the init
  containers' commands run in a bubblewrap sandbox on the pod's filesystem (a non-zero exit:
  phase Failed, the init container `terminated` with its exit code), then each container
  starts (its `command`+`args`, else `sleep infinity`); then phase Running, Ready True,
  containers ready. `readiness.never_ready`: Pending forever; `readiness.fail`: phase Failed. A
  container that exits: Succeeded/Failed once all have. Secret/ConfigMap volumes and env
  (`valueFrom`, `envFrom`) are read from the store (missing: the pod waits, as a kubelet does);
  `runAsNonRoot` with uid 0 is refused (CreateContainerConfigError). Deleting a pod kills
  everything it runs (execs included) and removes its filesystem.
- **Pod logs** (`/log`, `text/plain`): what the container printed (stdout and stderr
  interleaved), with `container`, `tailLines`, `sinceSeconds`, `timestamps`, `limitBytes`.
- **Pod exec over WebSocket** (`execws.py`): `v5.channel.k8s.io` (preferred) and
  `v4.channel.k8s.io`, stdin/stdout/stderr, the status on channel 3 exactly as a real server
  writes it, v5's close-stdin signal; the command runs in the container's namespaces (same
  filesystem, PID namespace, uid, workingDir and env). Many at once; a client that closes
  early gets its command killed.
- **Deployments**: status `replicas`/`updatedReplicas`/`readyReplicas`/`availableReplicas` =
  `spec.replicas` and `observedGeneration` = `generation` after each write (zero counts left
  out, as Go's omitempty does), Available/Progressing conditions; `rollout.delay_seconds`
  delays that, `rollout.stuck` keeps it incomplete; `deployments/scale` GET/PUT/PATCH.
- `/version` (`v1.32.0-stand-in`).

What it does NOT model: authentication and RBAC (every request is allowed; the token of the
kubeconfig is ignored), admission, scheduling (no nodes; `nodeSelector`, tolerations and
resource requests such as `nvidia.com/gpu` are accepted and ignored; every pod lands on
`stand-in-node`), images and image pulls (images are ignored: commands run with this machine's
tools; HOME is `/` for a non-root uid, as in an image without a passwd entry for it), network
isolation (pods share the host's network: an init container can clone from a loopback git
server), restarts (`restartPolicy` is read as Never), probes, graceful termination (deletion is
immediate; no `deletionTimestamp` is left behind), finalizers, owner references and garbage
collection (deployments create no ReplicaSets or pods), resourceVersion conflicts (a stale
`resourceVersion` is accepted), managed fields and apply conflicts (apply merges like a
strategic merge patch), the pod spec's immutability, TTYs, port-forward, attach, `follow`
logs (answered with what is there), `previous` logs (400), and volume types other than
emptyDir, secret and configMap (treated as emptyDir).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kmock
import kubernetes.client
import yaml
from aiohttp import web

from tests.support.kube.execws import ExecRecord
from tests.support.kube.kubelet import Readiness
from tests.support.kube.objects import JSON
from tests.support.kube.server import KubeEmulator, Rollout

__all__ = ["Cluster", "ExecRecord", "KubeEmulator", "Readiness", "Rollout", "running_cluster"]

T = TypeVar("T")
_CALL_TIMEOUT_S = 30.0


@dataclass
class Cluster:
    """A running stand-in cluster (see the module's docstring for what it does)."""

    url: str
    """`http://127.0.0.1:<port>`"""
    root: Path
    """The host directory holding each pod's filesystem."""
    readiness: Readiness = field(default_factory=Readiness)
    """How pods become ready; change it at any time (read when a pod starts)."""
    rollout: Rollout = field(default_factory=Rollout)
    """How deployments roll out; change it at any time."""
    emulator: KubeEmulator | None = field(default=None, repr=False)
    """The kmock handler: `emulator.objects`, `emulator.requests`, and reactions that take
    precedence over the stand-in (e.g. `emulator['post /api/v1/namespaces/x/pods'] << 500`)."""
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def configuration(self) -> kubernetes.client.Configuration:
        """A client configuration for the stand-in: its URL, no authentication."""
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return configuration

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.client.ApiClient(self.configuration())

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig naming the stand-in (for `KUBECONFIG` or `Settings(kubeconfig=...)`)."""
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kube-stand-in", "cluster": {"server": self.url}}],
            "users": [{"name": "kube-stand-in", "user": {"token": "kube-stand-in"}}],
            "contexts": [
                {
                    "name": "kube-stand-in",
                    "context": {
                        "cluster": "kube-stand-in",
                        "user": "kube-stand-in",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "kube-stand-in",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def pod_root(self, namespace: str, name: str) -> Path:
        """The pod's `/workspace` on the host (it exists once the pod has been started)."""
        return self.root / namespace / name / "workspace"

    def pods(self, namespace: str) -> list[JSON]:
        """The stored pods of a namespace (full objects, sorted by name)."""
        return self.objects("v1/pods", namespace)

    def objects(self, resource: str, namespace: str | None) -> list[JSON]:
        """Stored objects of a resource (`v1/pods`, `apps/v1/deployments`, `v1/namespaces`);
        `namespace=None`: of all namespaces (or a cluster-scoped resource)."""
        emulator = self._emulator()
        return self._call(_coroutine(lambda: emulator._all(kmock.resource(resource), namespace)))

    def get(self, resource: str, namespace: str | None, name: str) -> JSON | None:
        """One stored object, or None."""
        emulator = self._emulator()
        return self._call(
            _coroutine(lambda: emulator._stored(kmock.resource(resource), namespace, name))
        )

    def edit(self, resource: str, namespace: str | None, name: str, patch: JSON) -> JSON:
        """Merge `patch` into a stored object directly, past every server rule: e.g. backdate
        `metadata.creationTimestamp` or set `status.phase` for a janitor test. (The kubelet
        leaves a pod alone once something else has put it in a terminal phase.)"""
        emulator = self._emulator()
        return self._call(emulator.edit(kmock.resource(resource), namespace, name, patch))

    @property
    def execs(self) -> list[ExecRecord]:
        """Every exec served so far, oldest first."""
        return list(self._emulator().execs)

    def _emulator(self) -> KubeEmulator:
        assert self.emulator is not None, "the cluster is not running"
        return self.emulator

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "the cluster is not running"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CALL_TIMEOUT_S)


async def _coroutine(function: Callable[[], T]) -> T:
    return function()


class _Server:
    def __init__(self, root: Path, readiness: Readiness, rollout: Rollout) -> None:
        self.root = root
        self.readiness = readiness
        self.rollout = rollout
        self.emulator: KubeEmulator | None = None
        self.runner: web.ServerRunner | None = None

    async def start(self) -> str:
        self.emulator = KubeEmulator(self.root, self.readiness, self.rollout)
        await self.emulator.__aenter__()
        self.runner = web.ServerRunner(web.Server(self.emulator), shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        if self.emulator is not None:
            await self.emulator.close()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.emulator is not None:
            await self.emulator.__aexit__(None, None, None)


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[Cluster]:
    """Start a stand-in cluster on a free loopback port (its own thread and event loop), with
    pod filesystems under `root`; stop it and everything its pods run on exit."""
    root.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="kube-stand-in", daemon=True)
    thread.start()
    readiness, rollout = Readiness(), Rollout()
    server = _Server(root, readiness, rollout)
    try:
        url = asyncio.run_coroutine_threadsafe(server.start(), loop).result(_CALL_TIMEOUT_S)
        yield Cluster(
            url=url,
            root=root,
            readiness=readiness,
            rollout=rollout,
            emulator=server.emulator,
            _loop=loop,
        )
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(_CALL_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
