"""k8s.apply_manifest, k8s.rollout_status, k8s.restart_deployment: the delivery tools (contract
§4.2, §4.3, §5.1, §13). Shared rules (namespace, gate, requests, errors): `k8s.py`.

- `k8s.apply_manifest` reads YAML or JSON documents (≤ 256 KiB, ≤ `max_objects` objects: default
  10, at most 20), all checked before anything is sent: kinds ConfigMap, Deployment and Service
  only and an object namespace other than the target (both `policy_denied`); a bad document,
  apiVersion or name `invalid_argument`. Each object is then created, or replaced when it exists
  (create-or-update, its resourceVersion taken from the live object, a Service keeping its
  allocated cluster IPs and node ports), with `dryRun=All` when `dry_run` (the server validates,
  nothing is stored). A failure part-way reports what was applied before it.
- `k8s.rollout_status` polls the Deployment every `poll_interval_ms` until its rollout completes
  (observed generation caught up; updated, ready and available replicas at the desired count;
  none unavailable), fails (`ProgressDeadlineExceeded`), or `timeout_seconds` — or the tool's own
  limit, whichever comes first — runs out (`timeout`, with the last state).
- `k8s.restart_deployment` sets the pod template annotation `kubectl.kubernetes.io/restartedAt`
  (what `kubectl rollout restart` does) by replacing the Deployment read just before (retried on a
  write conflict), then optionally waits for the rollout as above.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field

from serve_app.domain.capability import (
    ArgField,
    CostHint,
    Idempotency,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument, policy_denied
from serve_app.tools.base import ArtifactPayload, Tool, ToolContext, ToolFailed, ToolResult
from serve_app.tools.declare import Arguments, Output, bounded
from serve_app.tools.k8s import (
    DEADLINE_MARGIN_S,
    EXAMPLE_NAMESPACE,
    Kube,
    Summary,
    cluster_tool,
    elapsed_ms,
    integer,
    meta,
    namespaced,
    object_name,
    section,
    summary_log,
    text,
)

MANIFEST_MAX_BYTES = 256 * 1024
OBJECTS_DEFAULT, OBJECTS_MAX = 10, 20
EXPANDED_MAX_UNITS = 4 * MANIFEST_MAX_BYTES
"""How large the parsed documents may grow (strings count their length): YAML aliases can make a
small manifest expand without bound."""
MAX_DEPTH = 64
"""How deeply a manifest's values may nest (a real object: about 15 levels)."""
ROLLOUT_TIMEOUT_DEFAULT, ROLLOUT_TIMEOUT_MAX = 120, 1800
POLL_DEFAULT_MS, POLL_MIN_MS, POLL_MAX_MS = 1000, 100, 10000
WRITE_ATTEMPTS = 3
"""Create-or-update and restart start over on a write conflict (409) at most this many times."""
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
FIELD_MANAGER = "workspace"
DEPLOYMENT_NAME_DENY = [" ", "\n", "\r", "/", "\\", ";", "|", "&"]

# kind → (canonical kind, apiVersion, resource)
KINDS: dict[str, tuple[str, str, str]] = {
    "configmap": ("ConfigMap", "v1", "configmaps"),
    "deployment": ("Deployment", "apps/v1", "deployments"),
    "service": ("Service", "v1", "services"),
}
ALLOWED_KINDS = ", ".join(kind for kind, _, _ in KINDS.values())
SERVER_FIELDS = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "selfLink",
)

NamespaceArg = Annotated[
    str,
    Field(
        description="Namespace (default: the session's runtime namespace, else "
        "WORKSPACE_K8S_NAMESPACE, else default)"
    ),
]
DeploymentNameArg = Annotated[str, Field(description="The Deployment's name")]
TimeoutArg = Annotated[
    int,
    bounded(
        1,
        ROLLOUT_TIMEOUT_MAX,
        f"Default {ROLLOUT_TIMEOUT_DEFAULT}; the wait also ends at the tool's own time limit",
    ),
]
PollArg = Annotated[int, bounded(POLL_MIN_MS, POLL_MAX_MS, f"Default {POLL_DEFAULT_MS}")]


def _report(name: str, output: Output) -> ArtifactPayload:
    return ArtifactPayload(
        name=name,
        content_type="application/json",
        data=json.dumps(output.dump(), indent=2).encode(),
    )


# manifests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestObject:
    kind: str
    api_version: str
    resource: str
    name: str
    body: dict[str, Any]


def _jsonable(value: Any, budget: list[int], depth: int = 0) -> Any:
    """`value` (parsed YAML) as plain JSON data, failing once it grows past the budget or nests
    deeper than `MAX_DEPTH`. Keys and timestamps become strings, as kubectl's YAML reader makes
    them."""
    budget[0] -= 1
    if budget[0] < 0:
        raise invalid_argument("manifest expands too much (YAML aliases?)")
    if depth > MAX_DEPTH:
        raise invalid_argument(f"manifest nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {_key(key): _jsonable(item, budget, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item, budget, depth + 1) for item in value]
    if isinstance(value, str):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise invalid_argument("manifest expands too much (YAML aliases?)")
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise invalid_argument(f"manifest holds a value JSON cannot carry ({type(value).__name__})")


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, str | int | float):
        return str(key)
    raise invalid_argument("manifest has a mapping key that is not a scalar")


def parse_manifest(manifest: str, max_objects: int) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML or JSON manifest, as JSON data."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents: list[dict[str, Any]] = []
    budget = [EXPANDED_MAX_UNITS]
    try:
        for document in yaml.load_all(manifest, Loader=loader):
            if document is None or document == {}:
                continue
            if not isinstance(document, dict):
                raise invalid_argument("each manifest document must be an object (a mapping)")
            if len(documents) == max_objects:
                raise invalid_argument(
                    f"manifest exceeds max_objects limit ({max_objects} objects)"
                )
            documents.append(_jsonable(document, budget))
    except RecursionError:
        raise invalid_argument(f"manifest nests deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be read"
        raise invalid_argument(f"manifest is not valid YAML/JSON{where}: {problem}") from None
    return documents


def check_object(document: dict[str, Any], namespace: str) -> ManifestObject:
    """A manifest document ready to send to `namespace`, or why it may not be."""
    raw_kind = document.get("kind")
    if not isinstance(raw_kind, str) or not raw_kind.strip():
        raise invalid_argument("manifest kind is required")
    known = KINDS.get(raw_kind.strip().lower())
    if known is None:
        raise policy_denied(
            f"manifest kind not allowed: {raw_kind.strip()} (allowed: {ALLOWED_KINDS})"
        )
    kind, api_version, resource = known
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise invalid_argument(f"{kind}: metadata is required")
    raw_name = metadata.get("name")
    if not isinstance(raw_name, str) or not raw_name.strip():
        raise invalid_argument(f"{kind}: metadata.name is required")
    name = object_name(raw_name, f"{kind} metadata.name")
    if document.get("apiVersion") != api_version:
        raise invalid_argument(
            f"{kind}/{name}: apiVersion must be {api_version}, got {document.get('apiVersion')!r}"
        )
    object_namespace = metadata.get("namespace")
    if object_namespace not in (None, "") and object_namespace != namespace:
        raise policy_denied(
            f"manifest namespace must match requested namespace: {kind}/{name} names "
            f"{object_namespace!r}, the target is {namespace!r}"
        )
    body = {key: value for key, value in document.items() if key != "status"}
    body["kind"] = kind
    body["metadata"] = {
        **{key: value for key, value in metadata.items() if key not in SERVER_FIELDS},
        "name": name,
        "namespace": namespace,
    }
    return ManifestObject(kind, api_version, resource, name, body)


def _port_key(port: dict[str, Any]) -> tuple[str, int, str]:
    return (text(port.get("name")), integer(port.get("port")), text(port.get("protocol")) or "TCP")


def keep_allocated_fields(service: dict[str, Any], live: dict[str, Any]) -> None:
    """Give a Service being replaced what the cluster allocated to the live one and the manifest
    leaves out (cluster IPs, IP families, node ports), which a replace may not change."""
    spec, current = section(service, "spec"), section(live, "spec")
    if not spec and not current:
        return
    service["spec"] = spec = dict(spec)
    for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort"):
        if field in current and not spec.get(field):
            spec[field] = copy.deepcopy(current[field])
    allocated = {
        _port_key(port): port.get("nodePort")
        for port in current.get("ports") or []
        if isinstance(port, dict) and port.get("nodePort")
    }
    ports = []
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and not port.get("nodePort") and _port_key(port) in allocated:
            port = {**port, "nodePort": allocated[_port_key(port)]}
        ports.append(port)
    if ports:
        spec["ports"] = ports


# k8s.apply_manifest ------------------------------------------------------------------------------


class ApplyArgs(Arguments):
    namespace: NamespaceArg = ""
    manifest: Annotated[
        str,
        Field(
            description="YAML or JSON, documents separated by ---; at most 262144 bytes; kinds "
            "ConfigMap, Deployment, Service"
        ),
    ]
    dry_run: Annotated[
        bool, Field(description="Let the server validate (dryRun=All) without storing anything")
    ] = False
    max_objects: Annotated[int, bounded(1, OBJECTS_MAX, f"Default {OBJECTS_DEFAULT}")] = (
        OBJECTS_DEFAULT
    )


class AppliedResource(Output):
    api_version: str
    kind: str
    name: str
    namespace: str
    operation: Literal["created", "updated"]


class ApplyOutput(Summary):
    namespace: str
    dry_run: bool
    applied_count: int
    created_count: int
    updated_count: int
    resources: list[AppliedResource]


async def _apply_one(
    kube: Kube, ctx: ToolContext, item: ManifestObject, namespace: str, dry_run: bool
) -> Literal["created", "updated"]:
    what = f"k8s apply {item.kind}/{item.name}"
    collection = namespaced(item.api_version, namespace, item.resource)
    path = namespaced(item.api_version, namespace, item.resource, item.name)
    query = [("fieldManager", FIELD_MANAGER)] + ([("dryRun", "All")] if dry_run else [])
    for attempt in range(WRITE_ATTEMPTS):
        last = attempt == WRITE_ATTEMPTS - 1
        live = await kube.request(ctx, "GET", path, what, allow=(404,))
        body = copy.deepcopy(item.body)
        if live.status == 404:
            created = await kube.request(
                ctx, "POST", collection, what, query=query, body=body, allow=() if last else (409,)
            )
            if created.status != 409:
                return "created"
            continue
        current = live.json()
        body["metadata"]["resourceVersion"] = text(meta(current).get("resourceVersion"))
        if item.kind == "Service":
            keep_allocated_fields(body, current)
        replaced = await kube.request(
            ctx, "PUT", path, what, query=query, body=body, allow=() if last else (409,)
        )
        if replaced.status != 409:
            return "updated"
    raise AssertionError("unreachable: the last attempt raises on a conflict")


async def _apply_manifest(kube: Kube, ctx: ToolContext, args: ApplyArgs) -> ToolResult[ApplyOutput]:
    manifest = args.manifest.strip()
    if not manifest:
        raise invalid_argument("manifest is required")
    if len(manifest.encode()) > MANIFEST_MAX_BYTES:
        raise invalid_argument(f"manifest exceeds {MANIFEST_MAX_BYTES} bytes")
    namespace = kube.namespace(ctx, args.namespace)
    documents = await ctx.blocking(lambda: parse_manifest(manifest, args.max_objects))
    if not documents:
        raise invalid_argument("manifest does not contain Kubernetes objects")
    objects = [check_object(document, namespace) for document in documents]
    output = ApplyOutput(
        namespace=namespace,
        dry_run=args.dry_run,
        applied_count=0,
        created_count=0,
        updated_count=0,
        resources=[],
        summary="",
        output="",
        exit_code=0,
    )
    verb = "validated (dry run)" if args.dry_run else "applied"
    for item in objects:
        try:
            operation = await _apply_one(kube, ctx, item, namespace, args.dry_run)
        except ServiceError as exc:
            output.summary = output.output = (
                f"{verb} {output.applied_count} of {len(objects)} resources in namespace "
                f"{namespace}; {item.kind}/{item.name} failed"
            )
            output.exit_code = 1
            raise ToolFailed(
                exc.code, exc.message, output=output, retryable=exc.retryable
            ) from None
        output.resources.append(
            AppliedResource(
                api_version=item.api_version,
                kind=item.kind,
                name=item.name,
                namespace=namespace,
                operation=operation,
            )
        )
        output.applied_count += 1
        output.created_count += operation == "created"
        output.updated_count += operation == "updated"
    output.summary = output.output = (
        f"{verb} {output.applied_count} resources in namespace {namespace}"
    )
    return ToolResult(
        output=output,
        logs=summary_log(output.summary),
        artifacts=[_report("k8s-apply-manifest-report.json", output)],
    )


# rollouts ----------------------------------------------------------------------------------------


class Condition(Output):
    type: str
    status: str
    reason: str
    message: str
    last_update_time: str
    last_transition_time: str


class Rollout(Output):
    generation: int
    observed_generation: int
    desired_replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    unavailable_replicas: int
    conditions: list[Condition]
    completed: bool


RolloutState = Literal["completed", "failed", "timeout"]


def rollout_of(deployment: dict[str, Any]) -> tuple[Rollout, str]:
    """A Deployment's rollout, and why it failed ("" unless its progress deadline passed)."""
    metadata, spec, status = (
        meta(deployment),
        section(deployment, "spec"),
        section(deployment, "status"),
    )
    conditions = sorted(
        (
            Condition(
                type=text(c.get("type")),
                status=text(c.get("status")),
                reason=text(c.get("reason")),
                message=text(c.get("message"))[:500],
                last_update_time=text(c.get("lastUpdateTime")),
                last_transition_time=text(c.get("lastTransitionTime")),
            )
            for c in status.get("conditions") or []
            if isinstance(c, dict)
        ),
        key=lambda condition: condition.type,
    )
    rollout = Rollout(
        generation=integer(metadata.get("generation")),
        observed_generation=integer(status.get("observedGeneration")),
        desired_replicas=integer(spec.get("replicas"), 1),
        updated_replicas=integer(status.get("updatedReplicas")),
        ready_replicas=integer(status.get("readyReplicas")),
        available_replicas=integer(status.get("availableReplicas")),
        unavailable_replicas=integer(status.get("unavailableReplicas")),
        conditions=conditions,
        completed=False,
    )
    desired = rollout.desired_replicas
    rollout.completed = (
        rollout.observed_generation >= rollout.generation
        and rollout.updated_replicas >= desired
        and rollout.ready_replicas >= desired
        and rollout.available_replicas >= desired
        and rollout.unavailable_replicas == 0
    )
    failure = next(
        (
            f"{c.reason}: {c.message}".rstrip(": ")
            for c in conditions
            if c.type == "Progressing"
            and c.status == "False"
            and c.reason == "ProgressDeadlineExceeded"
        ),
        "",
    )
    return rollout, failure


async def wait_for_rollout(
    kube: Kube,
    ctx: ToolContext,
    namespace: str,
    name: str,
    timeout_seconds: int,
    poll_interval_ms: int,
) -> tuple[Rollout, RolloutState, str]:
    """Poll the Deployment until its rollout completes, fails, or the wait (`timeout_seconds`,
    cut to the tool's deadline) runs out; the last state, the outcome and what to say."""
    path = namespaced("apps/v1", namespace, "deployments", name)
    what = f"k8s rollout status of deployment {namespace}/{name}"
    started = time.monotonic()
    wait_until = started + timeout_seconds
    while True:
        rollout, failure = rollout_of(await kube.get_json(ctx, path, what))
        if rollout.completed:
            return rollout, "completed", f"deployment {namespace}/{name} rollout is complete"
        if failure:
            return rollout, "failed", f"deployment {namespace}/{name} rollout failed: {failure}"
        waited = time.monotonic() - started
        left = min(wait_until - time.monotonic(), ctx.remaining() - 2 * DEADLINE_MARGIN_S)
        if left <= 0:
            limit = (
                f"timeout_seconds={timeout_seconds}"
                if wait_until - time.monotonic() <= 0
                else "the tool's own time limit"
            )
            return (
                rollout,
                "timeout",
                (
                    f"deployment {namespace}/{name} rollout not complete after {waited:.1f}s "
                    f"({limit}): {rollout.updated_replicas}/{rollout.desired_replicas} updated, "
                    f"{rollout.available_replicas} available"
                ),
            )
        await asyncio.sleep(min(poll_interval_ms / 1000, left))


def _outcome_error(state: RolloutState, message: str, output: Output) -> ToolFailed:
    if state == "timeout":
        return ToolFailed(ErrorCode.TIMEOUT, message, exit_code=124, output=output, retryable=True)
    return ToolFailed(ErrorCode.EXECUTION_FAILED, message, output=output)


class RolloutArgs(Arguments):
    namespace: NamespaceArg = ""
    deployment_name: DeploymentNameArg
    timeout_seconds: TimeoutArg = ROLLOUT_TIMEOUT_DEFAULT
    poll_interval_ms: PollArg = POLL_DEFAULT_MS


class RolloutOutput(Summary):
    namespace: str
    deployment_name: str
    status: Annotated[RolloutState, Field(description="completed, failed or timeout")]
    duration_ms: int
    rollout: Rollout


async def _rollout_status(
    kube: Kube, ctx: ToolContext, args: RolloutArgs
) -> ToolResult[RolloutOutput]:
    namespace = kube.namespace(ctx, args.namespace)
    name = object_name(args.deployment_name, "deployment_name")
    started = time.monotonic()
    rollout, state, message = await wait_for_rollout(
        kube, ctx, namespace, name, args.timeout_seconds, args.poll_interval_ms
    )
    output = RolloutOutput(
        namespace=namespace,
        deployment_name=name,
        status=state,
        duration_ms=elapsed_ms(started),
        rollout=rollout,
        summary=message,
        output=message,
        exit_code=0 if state == "completed" else (124 if state == "timeout" else 1),
    )
    if state != "completed":
        raise _outcome_error(state, message, output)
    return ToolResult(
        output=output,
        logs=summary_log(message),
        artifacts=[_report("k8s-rollout-status-report.json", output)],
    )


# k8s.restart_deployment --------------------------------------------------------------------------


class RestartArgs(Arguments):
    namespace: NamespaceArg = ""
    deployment_name: DeploymentNameArg
    wait_for_rollout: Annotated[
        bool, Field(description="Wait for the restart's rollout to complete")
    ] = False
    timeout_seconds: TimeoutArg = ROLLOUT_TIMEOUT_DEFAULT
    poll_interval_ms: PollArg = POLL_DEFAULT_MS


class RestartOutput(Summary):
    namespace: str
    deployment_name: str
    restarted_at: str
    previous_restarted_at: Annotated[str, Field(description='"" when never restarted before')]
    generation: int
    observed_generation: int
    rollout_status: Annotated[
        Literal["pending", "completed", "failed", "timeout"],
        Field(description="pending unless wait_for_rollout"),
    ]
    rollout: Rollout | None = None


def _timestamp(previous: str) -> str:
    """Now, in RFC 3339 (as kubectl writes it); finer when a restart in the same second came
    first, so that the template still changes."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return stamp if stamp != previous else now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _restart(
    kube: Kube, ctx: ToolContext, namespace: str, name: str
) -> tuple[str, str, dict[str, Any]]:
    """Set the restart annotation; (restarted_at, previous value, the updated Deployment)."""
    path = namespaced("apps/v1", namespace, "deployments", name)
    what = f"k8s restart deployment {namespace}/{name}"
    for attempt in range(WRITE_ATTEMPTS):
        deployment = await kube.get_json(ctx, path, what)
        template = deployment.setdefault("spec", {}).setdefault("template", {})
        annotations = template.setdefault("metadata", {}).get("annotations") or {}
        previous = text(annotations.get(RESTARTED_AT))
        restarted_at = _timestamp(previous)
        template["metadata"]["annotations"] = {**annotations, RESTARTED_AT: restarted_at}
        last = attempt == WRITE_ATTEMPTS - 1
        updated = await kube.request(
            ctx,
            "PUT",
            path,
            what,
            query=[("fieldManager", FIELD_MANAGER)],
            body=deployment,
            allow=() if last else (409,),
        )
        if updated.status != 409:
            answer = updated.json()
            return restarted_at, previous, answer if isinstance(answer, dict) else deployment
    raise AssertionError("unreachable: the last attempt raises on a conflict")


async def _restart_deployment(
    kube: Kube, ctx: ToolContext, args: RestartArgs
) -> ToolResult[RestartOutput]:
    namespace = kube.namespace(ctx, args.namespace)
    name = object_name(args.deployment_name, "deployment_name")
    restarted_at, previous, updated = await _restart(kube, ctx, namespace, name)
    summary = f"restarted deployment {namespace}/{name}"
    output = RestartOutput(
        namespace=namespace,
        deployment_name=name,
        restarted_at=restarted_at,
        previous_restarted_at=previous,
        generation=integer(meta(updated).get("generation")),
        observed_generation=integer(section(updated, "status").get("observedGeneration")),
        rollout_status="pending",
        summary=summary,
        output=summary,
        exit_code=0,
    )
    if args.wait_for_rollout:
        rollout, state, message = await wait_for_rollout(
            kube, ctx, namespace, name, args.timeout_seconds, args.poll_interval_ms
        )
        output.rollout, output.rollout_status = rollout, state
        output.summary = output.output = f"{summary}; {message}"
        if state != "completed":
            output.exit_code = 124 if state == "timeout" else 1
            raise _outcome_error(state, output.summary, output)
    return ToolResult(
        output=output,
        logs=summary_log(output.summary),
        artifacts=[_report("k8s-restart-deployment-report.json", output)],
    )


# declarations ------------------------------------------------------------------------------------


def tools(kube: Kube) -> list[Tool]:
    """The delivery tools, bound to the replica's cluster access and gated by its settings."""

    async def apply_manifest(ctx: ToolContext, args: ApplyArgs) -> ToolResult[ApplyOutput]:
        return await _apply_manifest(kube, ctx, args)

    async def rollout_status(ctx: ToolContext, args: RolloutArgs) -> ToolResult[RolloutOutput]:
        return await _rollout_status(kube, ctx, args)

    async def restart_deployment(ctx: ToolContext, args: RestartArgs) -> ToolResult[RestartOutput]:
        return await _restart_deployment(kube, ctx, args)

    deployment_name = ArgField(
        field="deployment_name", max_length=253, deny_characters=DEPLOYMENT_NAME_DENY
    )
    allowlisted = "namespace must be allowlisted by policy"
    return [
        cluster_tool(
            apply_manifest,
            arguments=ApplyArgs,
            output=ApplyOutput,
            delivery=kube,
            name="k8s.apply_manifest",
            description="Apply bounded Kubernetes manifests for allowlisted kinds in a namespace.",
            scope=Scope.CLUSTER,
            risk=RiskLevel.MEDIUM,
            approval=True,
            side_effects=SideEffects.REVERSIBLE,
            idempotency=Idempotency.BEST_EFFORT,
            timeout=90,
            output_kb=2048,
            cost=CostHint.MEDIUM,
            arg_fields=[ArgField(field="manifest", max_length=MANIFEST_MAX_BYTES)],
            preconditions=[allowlisted, "manifest kinds limited to ConfigMap/Deployment/Service"],
            postconditions=["cluster resources may be created or updated"],
            examples=[
                {
                    "namespace": EXAMPLE_NAMESPACE,
                    "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "
                    "sample-config\ndata:\n  key: value\n",
                },
                {
                    "namespace": EXAMPLE_NAMESPACE,
                    "dry_run": True,
                    "manifest": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: "
                    "sample-app\nspec:\n  replicas: 0\n  selector:\n    matchLabels:\n      "
                    "app: sample-app\n  template:\n    metadata:\n      labels:\n        app: "
                    "sample-app\n    spec:\n      containers:\n      - name: app\n        "
                    'image: busybox:1.36\n        command: ["sh","-lc","sleep 3600"]\n',
                },
            ],
        ),
        cluster_tool(
            rollout_status,
            arguments=RolloutArgs,
            output=RolloutOutput,
            delivery=kube,
            name="k8s.rollout_status",
            description="Wait for a deployment rollout to complete within bounded timeout.",
            scope=Scope.CLUSTER,
            risk=RiskLevel.MEDIUM,
            approval=True,
            side_effects=SideEffects.NONE,
            idempotency=Idempotency.GUARANTEED,
            timeout=120,
            output_kb=1024,
            cost=CostHint.MEDIUM,
            arg_fields=[deployment_name],
            preconditions=[allowlisted, "deployment must exist"],
            postconditions=["no cluster mutation"],
            examples=[
                {
                    "namespace": EXAMPLE_NAMESPACE,
                    "deployment_name": "workspace",
                    "timeout_seconds": 120,
                }
            ],
        ),
        cluster_tool(
            restart_deployment,
            arguments=RestartArgs,
            output=RestartOutput,
            delivery=kube,
            name="k8s.restart_deployment",
            description="Trigger a deployment restart by patching pod-template restart annotation.",
            scope=Scope.CLUSTER,
            risk=RiskLevel.MEDIUM,
            approval=True,
            side_effects=SideEffects.REVERSIBLE,
            idempotency=Idempotency.BEST_EFFORT,
            timeout=180,
            output_kb=1024,
            cost=CostHint.MEDIUM,
            arg_fields=[deployment_name],
            preconditions=[allowlisted, "deployment must exist"],
            postconditions=["deployment rollout may be triggered"],
            examples=[
                {
                    "namespace": EXAMPLE_NAMESPACE,
                    "deployment_name": "workspace",
                    "wait_for_rollout": True,
                    "timeout_seconds": 180,
                }
            ],
        ),
    ]
