"""Kubernetes workspaces (contract §7.2): one runner pod per session, made through the official
client. An init container (`repo-init`) empties the workdir on the pod's `emptyDir` and clones the
repository into it shallowly (with git credentials from a Secret mounted in that container only);
the runner container (`WORKSPACE_K8S_CONTAINER`) then sleeps, and every tool runs in it through
`pods/exec`. The image, resources, node selector and tolerations come from the session's runner
profile (`WORKSPACE_K8S_RUNNER_IMAGE_BUNDLES_JSON`): callers choose a profile, never an image.

Creation waits until the pod is Ready; on any failure (API error, failed clone, failed pod, the
readiness timeout, a cancelled request) the pod is deleted before the error goes up. The client is
blocking: every call runs on a thread, bounded by a request timeout.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import shlex
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from serve_app.adapters.local_workspace import mask_credentials
from serve_app.adapters.repo_sources import RepoSources
from serve_app.config import RunnerBundle, Settings
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument
from serve_app.domain.models import Principal, Runtime, Session

log = logging.getLogger(__name__)
T = TypeVar("T")

SESSION_APP = "workspace-session"
CONTAINER_RUN_APP = "workspace-container-run"
INIT_CONTAINER = "repo-init"
WORKSPACE_VOLUME = "workspace"
WORKSPACE_MOUNT = "/workspace"
GIT_AUTH_VOLUME = "git-auth"
GIT_AUTH_MOUNT = "/var/run/workspace-git-auth"
GIT_SECRET_FALLBACK_KEY = "git_secret_name"
# The exact session id (labels hold a sanitised, lower-cased copy): the janitor finds the
# session record by it. Container-run pods should carry it too.
SESSION_ID_ANNOTATION = "workspace/session-id"
PROFILE_ANNOTATION = "workspace/runner-profile"
MAX_NAME = 63
POLL_SECONDS = 1.5
REQUEST_TIMEOUT_SECONDS = 10.0
API_THREADS = 32
DELETE_GRACE_SECONDS = 1
INIT_LOG_LINES = 20
TERMINAL_PHASES = frozenset({"Failed", "Unknown", "Succeeded"})
# Waiting reasons that no amount of waiting cures.
HOPELESS_WAITING = frozenset({"InvalidImageName", "ErrImageNeverPull"})

_NOT_NAME = re.compile(r"[^a-z0-9-]")
_NOT_LABEL = re.compile(r"[^a-z0-9._-]")


# --- names -----------------------------------------------------------------------------------


def pod_name(prefix: str, session_id: str) -> str:
    """`<prefix>-<session id lowercased, non [a-z0-9-] → '-', trimmed, cut to fit 63>`."""
    room = MAX_NAME - len(prefix) - 1
    base = _NOT_NAME.sub("-", session_id.lower()).strip("-")[:room].rstrip("-")
    return f"{prefix}-{base or 'session'}"


def label_value(value: str) -> str:
    """A label value: lower-case `[a-z0-9-_.]`, at most 63, alphanumeric at both ends;
    `unknown` when nothing is left."""
    cleaned = _NOT_LABEL.sub("-", value.lower())[:MAX_NAME].strip("-_.")
    return cleaned or "unknown"


def session_labels(session_id: str, tenant_id: str) -> dict[str, str]:
    return {
        "app": SESSION_APP,
        "workspace_id": label_value(session_id),
        "workspace_tenant": label_value(tenant_id),
    }


# --- what a session asks for ---------------------------------------------------------------


@dataclass(frozen=True)
class PodOptions:
    """Everything of `Settings` the pod is made from."""

    namespace: str
    prefix: str
    container: str
    workdir: str
    init_image: str
    default_image: str
    bundles: Mapping[str, RunnerBundle]
    profile_key: str
    git_secret_key: str
    git_secret: str
    service_account: str
    run_as_user: int
    run_as_group: int
    fs_group: int
    read_only_root_fs: bool
    automount_token: bool
    ready_timeout: float

    @classmethod
    def of(cls, settings: Settings) -> PodOptions:
        return cls(
            namespace=settings.k8s_namespace,
            prefix=settings.k8s_pod_prefix,
            container=settings.k8s_container,
            workdir=settings.k8s_workdir,
            init_image=settings.k8s_init_image,
            default_image=settings.k8s_runner_image,
            bundles=dict(settings.k8s_runner_image_bundles),
            profile_key=settings.k8s_runner_profile_metadata_key,
            git_secret_key=settings.k8s_git_auth_metadata_key,
            git_secret=settings.k8s_git_auth_secret,
            service_account=settings.k8s_service_account,
            run_as_user=settings.k8s_run_as_user,
            run_as_group=settings.k8s_run_as_group,
            fs_group=settings.k8s_fs_group,
            read_only_root_fs=settings.k8s_read_only_root_fs,
            automount_token=settings.k8s_automount_sa_token,
            ready_timeout=settings.k8s_ready_timeout_seconds,
        )


def runner_bundle(options: PodOptions, metadata: Mapping[str, str]) -> tuple[str, RunnerBundle]:
    """The session's profile (lower-cased metadata value) and its bundle; no profile → the default
    image. An unknown profile is an error (HTTP 500, as in the original service)."""
    profile = metadata.get(options.profile_key, "").strip().lower()
    if not profile:
        return "", RunnerBundle(image=options.default_image)
    if not options.bundles:
        raise ServiceError(
            ErrorCode.INTERNAL,
            f'runner profile "{profile}" requested but no runner image bundles are configured',
        )
    bundle = options.bundles.get(profile)
    if bundle is None:
        raise ServiceError(ErrorCode.INTERNAL, f'runner profile "{profile}" is not configured')
    return profile, bundle


def git_secret_name(options: PodOptions, metadata: Mapping[str, str]) -> str:
    """metadata[`WORKSPACE_K8S_GIT_AUTH_METADATA_KEY`], else metadata `git_secret_name`, else
    `WORKSPACE_K8S_GIT_AUTH_SECRET`; empty: no credentials."""
    for candidate in (
        metadata.get(options.git_secret_key, ""),
        metadata.get(GIT_SECRET_FALLBACK_KEY, ""),
        options.git_secret,
    ):
        if candidate.strip():
            return candidate.strip()
    return ""


_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


# --- the pod ---------------------------------------------------------------------------------


def init_script(
    workdir: str, repo_url: str | None, repo_ref: str | None, *, auth_dir: str = GIT_AUTH_MOUNT
) -> str:
    """`sh -lc` script of `repo-init`: create and empty the workdir, install the git credentials
    when their Secret is mounted (at `auth_dir`), shallow-clone. Every value is shell-quoted.

    Credentials (contract §7.2): a `.netrc` is used as it is; else a `token` (with `username`,
    default `oauth2`) becomes a netrc entry for the repository's host only (or the Secret's own
    `host`); an `ssh-privatekey` is the identity, with strict host checking against the Secret's
    `known_hosts`, else accept-new. They live in a temporary HOME of the init container, never on
    the workspace volume."""
    q = shlex.quote
    lines = [
        "set -eu",
        f"workdir={q(workdir)}",
        'mkdir -p -- "$workdir"',
        'find "$workdir" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +',
    ]
    if not repo_url:
        return "\n".join(lines) + "\n"
    host = urlsplit(repo_url).hostname if repo_url.lower().startswith("http") else None
    lines += [
        f"auth={q(auth_dir)}",
        'if [ -d "$auth" ]; then',
        '  HOME="$(mktemp -d)"',
        "  export HOME",
        # Gone once the clone ends, whatever the outcome.
        """  trap 'rm -rf -- "$HOME"' EXIT""",
        '  if [ -f "$auth/.netrc" ]; then',
        '    cp -- "$auth/.netrc" "$HOME/.netrc"',
        '    chmod 600 "$HOME/.netrc"',
    ]
    if host:
        # A token is for the repository's host only (or the Secret's own `host`).
        lines += [
            '  elif [ -f "$auth/token" ]; then',
            "    user=oauth2",
            '    if [ -f "$auth/username" ]; then user="$(cat "$auth/username")"; fi',
            f"    host={q(host)}",
            '    if [ -f "$auth/host" ]; then host="$(cat "$auth/host")"; fi',
            "    printf 'machine %s\\nlogin %s\\npassword %s\\n' "
            '"$host" "$user" "$(cat "$auth/token")" > "$HOME/.netrc"',
            '    chmod 600 "$HOME/.netrc"',
        ]
    lines += [
        "  fi",
        '  if [ -f "$auth/ssh-privatekey" ]; then',
        '    mkdir -p "$HOME/.ssh"',
        '    chmod 700 "$HOME/.ssh"',
        '    cp -- "$auth/ssh-privatekey" "$HOME/.ssh/id"',
        '    chmod 600 "$HOME/.ssh/id"',
        '    ssh="ssh -i $HOME/.ssh/id -o IdentitiesOnly=yes '
        '-o UserKnownHostsFile=$HOME/.ssh/known_hosts"',
        '    if [ -f "$auth/known_hosts" ]; then',
        '      cp -- "$auth/known_hosts" "$HOME/.ssh/known_hosts"',
        '      GIT_SSH_COMMAND="$ssh -o StrictHostKeyChecking=yes"',
        "    else",
        '      GIT_SSH_COMMAND="$ssh -o StrictHostKeyChecking=accept-new"',
        "    fi",
        "    export GIT_SSH_COMMAND",
        "  fi",
        "fi",
    ]
    clone = ["git", "clone", "--depth", "1"]
    if repo_ref:
        clone += ["--branch", repo_ref]
    clone += ["--", repo_url]
    lines.append(" ".join(q(word) for word in clone) + ' "$workdir"')
    return "\n".join(lines) + "\n"


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def pod_manifest(
    options: PodOptions,
    *,
    session_id: str,
    principal: Principal,
    profile: str,
    bundle: RunnerBundle,
    repo_url: str | None,
    repo_ref: str | None,
    git_secret: str,
) -> dict[str, Any]:
    """The runner pod, as the API takes it (contract §7.2)."""
    name = pod_name(options.prefix, session_id)
    annotations = {SESSION_ID_ANNOTATION: session_id}
    if profile:
        annotations[PROFILE_ANNOTATION] = profile
    container_security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": options.read_only_root_fs,
    }
    workspace_mount: dict[str, Any] = {"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_MOUNT}
    volumes: list[dict[str, Any]] = [{"name": WORKSPACE_VOLUME, "emptyDir": {}}]
    init_mounts = [workspace_mount]
    if git_secret and repo_url:
        volumes.append(
            {
                "name": GIT_AUTH_VOLUME,
                "secret": {"secretName": git_secret, "defaultMode": 0o440},
            }
        )
        init_mounts.append({"name": GIT_AUTH_VOLUME, "mountPath": GIT_AUTH_MOUNT, "readOnly": True})
    runner_mounts = [workspace_mount]
    if options.read_only_root_fs:
        # Commands still need a writable /tmp (temp_dir, tools' scratch files).
        volumes.append({"name": "tmp", "emptyDir": {}})
        runner_mounts.append({"name": "tmp", "mountPath": "/tmp"})
    init_container = {
        "name": INIT_CONTAINER,
        "image": options.init_image,
        "imagePullPolicy": "Always",
        "command": ["sh", "-lc", init_script(options.workdir, repo_url, repo_ref)],
        "env": [{"name": "GIT_TERMINAL_PROMPT", "value": "0"}],
        "volumeMounts": init_mounts,
        # The init container writes its credentials under its own /tmp.
        "securityContext": {**container_security, "readOnlyRootFilesystem": False},
    }
    runner: dict[str, Any] = {
        "name": options.container,
        "image": bundle.image,
        "imagePullPolicy": "Always",
        "command": ["sh", "-lc", "sleep infinity"],
        "workingDir": options.workdir,
        "volumeMounts": runner_mounts,
        "securityContext": container_security,
    }
    if bundle.resources:
        runner["resources"] = {kind: dict(values) for kind, values in bundle.resources.items()}
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": options.automount_token,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": options.run_as_user,
            "runAsGroup": options.run_as_group,
            "fsGroup": options.fs_group,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": volumes,
        "initContainers": [init_container],
        "containers": [runner],
    }
    if options.service_account:
        spec["serviceAccountName"] = options.service_account
    if bundle.node_selector:
        spec["nodeSelector"] = dict(bundle.node_selector)
    if bundle.tolerations:
        spec["tolerations"] = [
            {_camel(key): value for key, value in toleration.items()}
            for toleration in bundle.tolerations
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": options.namespace,
            "labels": session_labels(session_id, principal.tenant_id),
            "annotations": annotations,
        },
        "spec": spec,
    }


# --- readiness -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    state: str
    """`ready`, `waiting`, `clone_failed` or `failed`."""
    detail: str = ""


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    return obj


def readiness(pod: Any) -> Readiness:
    """Where a pod (a client model) stands on its way to Ready."""
    status = _get(pod, "status")
    phase = _get(status, "phase") or "Pending"
    for init in _get(status, "init_container_statuses") or []:
        terminated = _get(init, "state", "terminated")
        code = _get(terminated, "exit_code")
        if terminated is not None and code not in (0, None):
            reason = _get(terminated, "message") or _get(terminated, "reason") or "Error"
            return Readiness("clone_failed", f"exit code {code}: {reason}")
    if phase in TERMINAL_PHASES:
        message = _get(status, "message") or _get(status, "reason") or ""
        return Readiness("failed", f"phase {phase}" + (f": {message}" if message else ""))
    for condition in _get(status, "conditions") or []:
        if _get(condition, "type") == "Ready" and _get(condition, "status") == "True":
            return Readiness("ready")
    statuses = [*(_get(status, "init_container_statuses") or [])]
    statuses += _get(status, "container_statuses") or []
    for container in statuses:
        waiting = _get(container, "state", "waiting")
        reason = _get(waiting, "reason")
        if reason:
            detail = f"{_get(container, 'name')}: {reason}"
            if message := _get(waiting, "message"):
                detail += f": {message}"
            return Readiness("failed" if reason in HOPELESS_WAITING else "waiting", detail)
    return Readiness("waiting", f"phase {phase}")


# --- the manager -----------------------------------------------------------------------------


class KubernetesWorkspaceManager:
    def __init__(
        self,
        api: client.ApiClient,
        options: PodOptions,
        *,
        allowed_schemes: list[str],
        poll_seconds: float = POLL_SECONDS,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._client = api
        self._core = client.CoreV1Api(api)
        self._host = str(getattr(api.configuration, "host", "") or "")
        self._options = options
        # Remote transports only (`_check_url` refuses local paths first): the pod cannot see
        # the service's directories, so no source root is allowed.
        self._sources = RepoSources(
            source_roots=[],
            workspace_root=Path(WORKSPACE_MOUNT),
            artifact_root=Path(WORKSPACE_MOUNT),
            allowed_schemes=allowed_schemes,
        )
        self._poll = poll_seconds
        self._timeout = request_timeout
        # The client blocks: its calls get threads of their own, so that a slow API never
        # starves the replica's default executor.
        self._threads = ThreadPoolExecutor(API_THREADS, thread_name_prefix="kube-api")

    @classmethod
    def from_settings(
        cls, api: client.ApiClient, settings: Settings, **kwargs: Any
    ) -> KubernetesWorkspaceManager:
        return cls(
            api, PodOptions.of(settings), allowed_schemes=settings.git_allowed_schemes, **kwargs
        )

    @property
    def options(self) -> PodOptions:
        return self._options

    @property
    def api_client(self) -> client.ApiClient:
        return self._client

    def close(self) -> None:
        """The client's connections and this manager's threads (blocking: call it on a thread)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._client.close()  # type: ignore[no-untyped-call]

    async def create(
        self,
        session_id: str,
        principal: Principal,
        *,
        source_repo_path: str | None,
        repo_url: str | None,
        repo_ref: str | None,
        metadata: Mapping[str, str] | None = None,
    ) -> tuple[str, Runtime]:
        """Make the session's runner pod and wait until it is Ready."""
        options = self._options
        metadata = metadata or {}
        if source_repo_path:
            raise invalid_argument(
                "source_repo_path is not supported by the kubernetes backend; use repo_url"
            )
        if repo_url:
            self._check_url(repo_url)
        profile, bundle = runner_bundle(options, metadata)
        secret = git_secret_name(options, metadata)
        if secret and not _SECRET_NAME.fullmatch(secret):
            raise invalid_argument("the git credentials Secret name is not a valid Secret name")
        manifest = pod_manifest(
            options,
            session_id=session_id,
            principal=principal,
            profile=profile,
            bundle=bundle,
            repo_url=repo_url,
            repo_ref=repo_ref,
            git_secret=secret,
        )
        name = manifest["metadata"]["name"]
        try:
            await self._api(self._core.create_namespaced_pod, options.namespace, manifest)
        except ApiException as exc:
            # Refused: nothing was made.
            if exc.status == 409:
                # Another session's pod (ids differing only in case or punctuation share a
                # name): never delete it.
                raise ServiceError(
                    ErrorCode.ALREADY_EXISTS,
                    f"runner pod {name} already exists (session ids that differ only in case or "
                    "punctuation share a pod name)",
                ) from None
            raise self._api_error(f"cannot create runner pod {name}", exc) from None
        except BaseException:
            # Cancelled, timed out or cut off mid-call: the pod may exist.
            await asyncio.shield(self._delete_quietly(name))
            raise
        try:
            await self._wait_ready(name)
        except BaseException:
            # Whatever went wrong (the request cancelled included), the pod goes.
            await asyncio.shield(self._delete_quietly(name))
            raise
        runtime = Runtime(
            kind="kubernetes",
            namespace=options.namespace,
            pod_name=name,
            container=options.container,
            workdir=options.workdir,
        )
        log.info("runner pod %s/%s ready for session %s", options.namespace, name, session_id)
        return options.workdir, runtime

    async def remove(self, session: Session) -> None:
        """Delete the session's pod (the one its runtime names, else the ones labelled with its
        id); a pod already gone is fine."""
        runtime = session.runtime
        namespace = runtime.namespace or self._options.namespace
        if runtime.pod_name:
            names = [runtime.pod_name]
        else:
            selector = f"app={SESSION_APP},workspace_id={label_value(session.id)}"
            try:
                found = await self._api(
                    self._core.list_namespaced_pod, namespace, label_selector=selector
                )
            except ApiException as exc:
                raise self._api_error(
                    f"cannot list the pods of session {session.id}", exc
                ) from None
            names = [
                pod.metadata.name for pod in found.items or [] if pod.metadata and pod.metadata.name
            ]
        for name in names:
            await self.delete_pod(namespace, name)

    async def delete_pod(self, namespace: str, name: str) -> bool:
        """Delete one pod; False when it was already gone."""
        try:
            await self._api(
                self._core.delete_namespaced_pod,
                name,
                namespace,
                grace_period_seconds=DELETE_GRACE_SECONDS,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise self._api_error(f"cannot delete runner pod {namespace}/{name}", exc) from None
        return True

    async def check(self) -> None:
        """Reach the API and list pods in the namespace (what the backend needs most); raises
        `RuntimeError` naming the API URL otherwise."""
        try:
            await self._api(self._core.list_namespaced_pod, self._options.namespace, limit=1)
        except (ApiException, ServiceError) as exc:
            detail = f"{exc.status} {exc.reason}" if isinstance(exc, ApiException) else exc.message
            raise RuntimeError(
                f"cannot use the Kubernetes API at {self._host or '(unknown)'} for namespace "
                f"{self._options.namespace}: {detail}"
            ) from None

    # --- internals ---------------------------------------------------------------------------

    def _check_url(self, repo_url: str) -> None:
        lowered = repo_url.lower()
        if repo_url.startswith("/") or lowered.startswith("file:"):
            raise invalid_argument(
                "repo_url: local repositories are not supported by the kubernetes backend"
            )
        self._sources.remote(repo_url)

    async def _wait_ready(self, name: str) -> None:
        options = self._options
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.ready_timeout
        detail = "not yet scheduled"
        while True:
            try:
                pod = await self._api(self._core.read_namespaced_pod, name, options.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    raise ServiceError(
                        ErrorCode.INTERNAL, f"runner pod {options.namespace}/{name} disappeared"
                    ) from None
                raise self._api_error(f"cannot read runner pod {name}", exc) from None
            state = readiness(pod)
            if state.state == "ready":
                return
            if state.state == "clone_failed":
                logs = await self._init_logs(name)
                detail = mask_credentials(logs or state.detail)
                raise ServiceError(ErrorCode.EXECUTION_FAILED, f"git clone failed: {detail}")
            if state.state == "failed":
                raise ServiceError(
                    ErrorCode.INTERNAL,
                    f"runner pod {options.namespace}/{name} failed: {state.detail}",
                )
            detail = state.detail
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ServiceError(
                    ErrorCode.INTERNAL,
                    f"runner pod {options.namespace}/{name} was not ready within "
                    f"{options.ready_timeout:g} s ({detail})",
                )
            await asyncio.sleep(min(self._poll, remaining))

    async def _init_logs(self, name: str) -> str:
        """The last lines `repo-init` wrote, if the API gives them."""
        try:
            text = await self._api(
                self._core.read_namespaced_pod_log,
                name,
                self._options.namespace,
                container=INIT_CONTAINER,
                tail_lines=INIT_LOG_LINES,
            )
        except (ApiException, ServiceError):
            return ""
        return str(text or "").strip()

    async def _delete_quietly(self, name: str) -> None:
        try:
            await self.delete_pod(self._options.namespace, name)
        except Exception:
            log.exception("could not delete runner pod %s/%s", self._options.namespace, name)

    async def _api(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One blocking client call on a thread, bounded; an unreachable API is `internal`."""
        kwargs.setdefault("_request_timeout", self._timeout)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._threads, functools.partial(call, *args, **kwargs))
        try:
            return await asyncio.wait_for(work, timeout=self._timeout * 2)
        except (TimeoutError, OSError, HTTPError) as exc:
            raise ServiceError(
                ErrorCode.INTERNAL, f"cannot reach the Kubernetes API at {self._host}: {exc}"
            ) from None

    @staticmethod
    def _api_error(what: str, exc: ApiException) -> ServiceError:
        return ServiceError(ErrorCode.INTERNAL, f"{what}: {exc.status} {exc.reason}{_body(exc)}")


def _body(exc: ApiException) -> str:
    """The API's own message, if its body is a Status."""
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {message}" if isinstance(message, str) and message else ""
