"""k8s.get_pods, k8s.get_services, k8s.get_deployments, k8s.get_images, k8s.get_logs: read-only
views of one namespace (contract §4.2, §4.3). Shared rules (namespace, requests, errors): `k8s.py`.

What they report is a summary of each object, never its secrets: no environment values, no
ConfigMap or Secret data, no annotations (a pod's containers show name, image, readiness,
restarts and state; a deployment's containers name and image). Lists are sorted by name, cut at
their `max_*` argument (`truncated: true`) and fitted to the output limit.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import Field

from serve_app.domain.capability import CostHint, Idempotency, RiskLevel, Scope, SideEffects
from serve_app.domain.errors import invalid_argument
from serve_app.tools.base import Tool, ToolContext, ToolResult
from serve_app.tools.declare import Arguments, Output, bounded
from serve_app.tools.fitting import head_within
from serve_app.tools.k8s import (
    EXAMPLE_NAMESPACE,
    SOURCE,
    Handler,
    Kube,
    Summary,
    cluster_tool,
    fit,
    integer,
    is_dns_label,
    labels,
    meta,
    namespaced,
    object_name,
    section,
    summary_log,
    text,
)

A = TypeVar("A", bound=Arguments)
Out = TypeVar("Out", bound=Output)

LIST_DEFAULT, LIST_MAX = 100, 500
IMAGES_DEFAULT, IMAGES_MAX = 200, 1000
IMAGES_PAGE, IMAGES_PAGES = 500, 20
"""`k8s.get_images` reads at most 20 pages of 500 pods (10,000 pods); more → `truncated`."""
IMAGE_REFERENCES_MAX = 100
TAIL_DEFAULT, TAIL_MAX = 200, 10000
SINCE_MAX = 604800
LOG_BYTES_MIN, LOG_BYTES_DEFAULT, LOG_BYTES_MAX = 1024, 256 * 1024, 2 * 1024 * 1024
SELECTOR_MAX_CHARS = 4096

READ_POSTCONDITIONS = ["no cluster mutation"]

NamespaceArg = Annotated[
    str,
    Field(
        description="Namespace (default: the session's runtime namespace, else "
        "WORKSPACE_K8S_NAMESPACE, else default)"
    ),
]
LabelSelectorArg = Annotated[str, Field(description="Label selector, e.g. app=web,tier!=cache")]
FieldSelectorArg = Annotated[str, Field(description="Field selector, e.g. status.phase=Running")]
IncludeLabelsArg = Annotated[bool, Field(description="Add each object's labels")]
IncludeContainersArg = Annotated[bool, Field(description="Add each object's containers")]


def _selector(value: str, what: str) -> str:
    selector = value.strip()
    if len(selector) > SELECTOR_MAX_CHARS or "\n" in selector or "\r" in selector:
        raise invalid_argument(f"{what} must be one line of at most {SELECTOR_MAX_CHARS} chars")
    return selector


class Listing(Summary):
    """What every listing reports besides its items."""

    namespace: str
    label_selector: str
    field_selector: str
    source: str
    count: int
    truncated: bool


def _sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: text(meta(item).get("name")))


# k8s.get_pods ------------------------------------------------------------------------------------


class PodsArgs(Arguments):
    namespace: NamespaceArg = ""
    label_selector: LabelSelectorArg = ""
    field_selector: FieldSelectorArg = ""
    max_pods: Annotated[int, bounded(1, LIST_MAX, f"Default {LIST_DEFAULT}")] = LIST_DEFAULT
    include_containers: IncludeContainersArg = False
    include_labels: IncludeLabelsArg = False


class PodContainer(Output):
    name: str
    image: str
    ready: bool
    restart_count: int
    state: Annotated[str, Field(description="running, waiting, terminated or unknown")]


class Pod(Output):
    name: str
    namespace: str
    phase: str
    node_name: str
    pod_ip: str
    host_ip: str
    qos_class: str
    ready_containers: int
    total_containers: int
    restart_count: int
    created_at: str
    labels: dict[str, str] | None = None
    containers: list[PodContainer] | None = None


class PodsOutput(Listing):
    include_containers: bool
    include_labels: bool
    pods: list[Pod]


def _container_state(status: dict[str, Any]) -> str:
    state = section(status, "state")
    for name in ("running", "waiting", "terminated"):
        if name in state:
            return name
    return "unknown"


def _pod(item: dict[str, Any], *, containers: bool, with_labels: bool) -> Pod:
    metadata, spec, status = meta(item), section(item, "spec"), section(item, "status")
    statuses = [s for s in status.get("containerStatuses") or [] if isinstance(s, dict)]
    by_name = {text(s.get("name")): s for s in statuses}
    declared = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    pod = Pod(
        name=text(metadata.get("name")),
        namespace=text(metadata.get("namespace")),
        phase=text(status.get("phase")),
        node_name=text(spec.get("nodeName")),
        pod_ip=text(status.get("podIP")),
        host_ip=text(status.get("hostIP")),
        qos_class=text(status.get("qosClass")),
        ready_containers=sum(1 for s in statuses if s.get("ready") is True),
        total_containers=len(declared),
        restart_count=sum(integer(s.get("restartCount")) for s in statuses),
        created_at=text(metadata.get("creationTimestamp")),
    )
    if with_labels:
        pod.labels = labels(metadata.get("labels"))
    if containers:
        pod.containers = [
            PodContainer(
                name=text(container.get("name")),
                image=text(container.get("image")),
                ready=by_name.get(text(container.get("name")), {}).get("ready") is True,
                restart_count=integer(
                    by_name.get(text(container.get("name")), {}).get("restartCount")
                ),
                state=_container_state(by_name.get(text(container.get("name")), {})),
            )
            for container in sorted(declared, key=lambda c: text(c.get("name")))
        ]
    return pod


async def _get_pods(kube: Kube, ctx: ToolContext, args: PodsArgs) -> ToolResult[PodsOutput]:
    namespace = kube.namespace(ctx, args.namespace)
    label_selector = _selector(args.label_selector, "label_selector")
    field_selector = _selector(args.field_selector, "field_selector")
    items, more = await kube.list_items(
        ctx,
        namespaced("v1", namespace, "pods"),
        "k8s get pods",
        label_selector=label_selector,
        field_selector=field_selector,
        limit=args.max_pods + 1,
    )
    items = _sorted(items)
    truncated = more or len(items) > args.max_pods
    pods = [
        _pod(item, containers=args.include_containers, with_labels=args.include_labels)
        for item in items[: args.max_pods]
    ]
    summary = f"listed {len(pods)} pods from namespace {namespace}"
    output = PodsOutput(
        namespace=namespace,
        label_selector=label_selector,
        field_selector=field_selector,
        source=SOURCE,
        count=0,
        truncated=False,
        include_containers=args.include_containers,
        include_labels=args.include_labels,
        pods=[],
        summary=summary,
        output=summary,
        exit_code=0,
    )
    output.pods, cut = fit(output, "pods", pods, ctx.output_limit)
    output.count, output.truncated = len(output.pods), truncated or cut
    if cut:
        output.summary = output.output = f"listed {output.count} pods from namespace {namespace}"
    return ToolResult(output=output, logs=summary_log(output.summary))


# k8s.get_services --------------------------------------------------------------------------------


class ServicesArgs(Arguments):
    namespace: NamespaceArg = ""
    label_selector: LabelSelectorArg = ""
    field_selector: FieldSelectorArg = ""
    max_services: Annotated[int, bounded(1, LIST_MAX, f"Default {LIST_DEFAULT}")] = LIST_DEFAULT
    include_labels: IncludeLabelsArg = False


class ServicePort(Output):
    name: str
    protocol: str
    port: int
    target_port: str
    node_port: int


class Service(Output):
    name: str
    namespace: str
    type: str
    cluster_ip: str
    external_ips: list[str]
    selector: dict[str, str]
    ports: list[ServicePort]
    created_at: str
    labels: dict[str, str] | None = None


class ServicesOutput(Listing):
    include_labels: bool
    services: list[Service]


def _service(item: dict[str, Any], *, with_labels: bool) -> Service:
    metadata, spec, status = meta(item), section(item, "spec"), section(item, "status")
    ingress = section(status, "loadBalancer").get("ingress") or []
    external = [text(ip) for ip in spec.get("externalIPs") or [] if text(ip)]
    for entry in ingress:
        if isinstance(entry, dict):
            external.extend(
                value for value in (text(entry.get("ip")), text(entry.get("hostname"))) if value
            )
    ports = [
        ServicePort(
            name=text(port.get("name")),
            protocol=text(port.get("protocol")) or "TCP",
            port=integer(port.get("port")),
            target_port=str(port.get("targetPort", "")),
            node_port=integer(port.get("nodePort")),
        )
        for port in spec.get("ports") or []
        if isinstance(port, dict)
    ]
    service = Service(
        name=text(metadata.get("name")),
        namespace=text(metadata.get("namespace")),
        type=text(spec.get("type")) or "ClusterIP",
        cluster_ip=text(spec.get("clusterIP")),
        external_ips=sorted(external),
        selector=labels(spec.get("selector")),
        ports=sorted(ports, key=lambda port: (port.name, port.port)),
        created_at=text(metadata.get("creationTimestamp")),
    )
    if with_labels:
        service.labels = labels(metadata.get("labels"))
    return service


async def _get_services(
    kube: Kube, ctx: ToolContext, args: ServicesArgs
) -> ToolResult[ServicesOutput]:
    namespace = kube.namespace(ctx, args.namespace)
    label_selector = _selector(args.label_selector, "label_selector")
    field_selector = _selector(args.field_selector, "field_selector")
    items, more = await kube.list_items(
        ctx,
        namespaced("v1", namespace, "services"),
        "k8s get services",
        label_selector=label_selector,
        field_selector=field_selector,
        limit=args.max_services + 1,
    )
    items = _sorted(items)
    truncated = more or len(items) > args.max_services
    services = [
        _service(item, with_labels=args.include_labels) for item in items[: args.max_services]
    ]
    output = ServicesOutput(
        namespace=namespace,
        label_selector=label_selector,
        field_selector=field_selector,
        source=SOURCE,
        count=0,
        truncated=False,
        include_labels=args.include_labels,
        services=[],
        summary="",
        output="",
        exit_code=0,
    )
    output.services, cut = fit(output, "services", services, ctx.output_limit)
    output.count, output.truncated = len(output.services), truncated or cut
    output.summary = output.output = f"listed {output.count} services from namespace {namespace}"
    return ToolResult(output=output, logs=summary_log(output.summary))


# k8s.get_deployments -----------------------------------------------------------------------------


class DeploymentsArgs(Arguments):
    namespace: NamespaceArg = ""
    label_selector: LabelSelectorArg = ""
    field_selector: FieldSelectorArg = ""
    max_deployments: Annotated[int, bounded(1, LIST_MAX, f"Default {LIST_DEFAULT}")] = LIST_DEFAULT
    include_containers: IncludeContainersArg = False
    include_labels: IncludeLabelsArg = False


class DeploymentContainer(Output):
    name: str
    image: str


class Deployment(Output):
    name: str
    namespace: str
    strategy: str
    replicas: int
    ready_replicas: int
    updated_replicas: int
    available_replicas: int
    unavailable_replicas: int
    selector: dict[str, str]
    created_at: str
    labels: dict[str, str] | None = None
    containers: list[DeploymentContainer] | None = None


class DeploymentsOutput(Listing):
    include_containers: bool
    include_labels: bool
    deployments: list[Deployment]


def _deployment(item: dict[str, Any], *, containers: bool, with_labels: bool) -> Deployment:
    metadata, spec, status = meta(item), section(item, "spec"), section(item, "status")
    deployment = Deployment(
        name=text(metadata.get("name")),
        namespace=text(metadata.get("namespace")),
        strategy=text(section(spec, "strategy").get("type")),
        replicas=integer(spec.get("replicas"), 1),
        ready_replicas=integer(status.get("readyReplicas")),
        updated_replicas=integer(status.get("updatedReplicas")),
        available_replicas=integer(status.get("availableReplicas")),
        unavailable_replicas=integer(status.get("unavailableReplicas")),
        selector=labels(section(spec, "selector").get("matchLabels")),
        created_at=text(metadata.get("creationTimestamp")),
    )
    if with_labels:
        deployment.labels = labels(metadata.get("labels"))
    if containers:
        pod_spec = section(section(spec, "template"), "spec")
        deployment.containers = sorted(
            (
                DeploymentContainer(name=text(c.get("name")), image=text(c.get("image")))
                for c in pod_spec.get("containers") or []
                if isinstance(c, dict)
            ),
            key=lambda container: container.name,
        )
    return deployment


async def _get_deployments(
    kube: Kube, ctx: ToolContext, args: DeploymentsArgs
) -> ToolResult[DeploymentsOutput]:
    namespace = kube.namespace(ctx, args.namespace)
    label_selector = _selector(args.label_selector, "label_selector")
    field_selector = _selector(args.field_selector, "field_selector")
    items, more = await kube.list_items(
        ctx,
        namespaced("apps/v1", namespace, "deployments"),
        "k8s get deployments",
        label_selector=label_selector,
        field_selector=field_selector,
        limit=args.max_deployments + 1,
    )
    items = _sorted(items)
    truncated = more or len(items) > args.max_deployments
    deployments = [
        _deployment(item, containers=args.include_containers, with_labels=args.include_labels)
        for item in items[: args.max_deployments]
    ]
    output = DeploymentsOutput(
        namespace=namespace,
        label_selector=label_selector,
        field_selector=field_selector,
        source=SOURCE,
        count=0,
        truncated=False,
        include_containers=args.include_containers,
        include_labels=args.include_labels,
        deployments=[],
        summary="",
        output="",
        exit_code=0,
    )
    output.deployments, cut = fit(output, "deployments", deployments, ctx.output_limit)
    output.count, output.truncated = len(output.deployments), truncated or cut
    output.summary = output.output = f"listed {output.count} deployments from namespace {namespace}"
    return ToolResult(output=output, logs=summary_log(output.summary))


# k8s.get_images ----------------------------------------------------------------------------------


class ImagesArgs(Arguments):
    namespace: NamespaceArg = ""
    label_selector: LabelSelectorArg = ""
    field_selector: FieldSelectorArg = ""
    max_images: Annotated[int, bounded(1, IMAGES_MAX, f"Default {IMAGES_DEFAULT}")] = IMAGES_DEFAULT
    include_workloads: Annotated[
        bool,
        Field(description="Add the pods and pod/container pairs using each image (first 100)"),
    ] = False


class Image(Output):
    image: str
    occurrences: Annotated[int, Field(description="Containers (init containers too) using it")]
    pod_count: int
    pods: list[str] | None = None
    workloads: list[str] | None = None


class ImagesOutput(Listing):
    include_workloads: bool
    images: list[Image]


def _image_index(pods: list[dict[str, Any]]) -> dict[str, tuple[int, set[str], set[str]]]:
    """image → (occurrences, pod names, pod/container pairs)."""
    index: dict[str, tuple[int, set[str], set[str]]] = {}
    for item in pods:
        pod = text(meta(item).get("name"))
        spec = section(item, "spec")
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                if not isinstance(container, dict):
                    continue
                image = text(container.get("image")).strip()
                if not image:
                    continue
                count, names, workloads = index.get(image, (0, set(), set()))
                names.add(pod)
                workloads.add(f"{pod}/{text(container.get('name'))}")
                index[image] = (count + 1, names, workloads)
    return index


async def _get_images(kube: Kube, ctx: ToolContext, args: ImagesArgs) -> ToolResult[ImagesOutput]:
    namespace = kube.namespace(ctx, args.namespace)
    label_selector = _selector(args.label_selector, "label_selector")
    field_selector = _selector(args.field_selector, "field_selector")
    pods, more = await kube.list_items(
        ctx,
        namespaced("v1", namespace, "pods"),
        "k8s get images",
        label_selector=label_selector,
        field_selector=field_selector,
        limit=IMAGES_PAGE,
        pages=IMAGES_PAGES,
    )
    index = _image_index(pods)
    ranked = sorted(index.items(), key=lambda entry: (-entry[1][0], entry[0]))
    truncated = more or len(ranked) > args.max_images
    images = []
    for image, (count, names, workloads) in ranked[: args.max_images]:
        entry = Image(image=image, occurrences=count, pod_count=len(names))
        if args.include_workloads:
            entry.pods = sorted(names)[:IMAGE_REFERENCES_MAX]
            entry.workloads = sorted(workloads)[:IMAGE_REFERENCES_MAX]
        images.append(entry)
    output = ImagesOutput(
        namespace=namespace,
        label_selector=label_selector,
        field_selector=field_selector,
        source=SOURCE,
        count=0,
        truncated=False,
        include_workloads=args.include_workloads,
        images=[],
        summary="",
        output="",
        exit_code=0,
    )
    output.images, cut = fit(output, "images", images, ctx.output_limit)
    output.count, output.truncated = len(output.images), truncated or cut
    output.summary = output.output = f"listed {output.count} images from namespace {namespace}"
    return ToolResult(output=output, logs=summary_log(output.summary))


# k8s.get_logs ------------------------------------------------------------------------------------


class LogsArgs(Arguments):
    namespace: NamespaceArg = ""
    pod_name: Annotated[str, Field(description="Pod whose logs to read")]
    container: Annotated[
        str, Field(description="Container (required by the API when the pod has several)")
    ] = ""
    tail_lines: Annotated[int, bounded(1, TAIL_MAX, f"Default {TAIL_DEFAULT}")] = TAIL_DEFAULT
    since_seconds: Annotated[int, bounded(0, SINCE_MAX, "Only lines this recent (0: no limit)")] = 0
    previous: Annotated[bool, Field(description="The previous (crashed) container's logs")] = False
    max_bytes: Annotated[
        int, bounded(LOG_BYTES_MIN, LOG_BYTES_MAX, f"Default {LOG_BYTES_DEFAULT}")
    ] = LOG_BYTES_DEFAULT


class LogsOutput(Summary):
    namespace: str
    pod_name: str
    container: str
    tail_lines: int
    since_seconds: int
    previous: bool
    source: str
    bytes: int
    line_count: int
    truncated: bool
    logs: str


async def _get_logs(kube: Kube, ctx: ToolContext, args: LogsArgs) -> ToolResult[LogsOutput]:
    namespace = kube.namespace(ctx, args.namespace)
    pod_name = object_name(args.pod_name, "pod_name")
    container = args.container.strip()
    if container and not is_dns_label(container):
        raise invalid_argument(f"container must be a DNS-1123 label, got {container!r}")
    query = [("tailLines", str(args.tail_lines)), ("limitBytes", str(args.max_bytes + 1))]
    if container:
        query.append(("container", container))
    if args.since_seconds:
        query.append(("sinceSeconds", str(args.since_seconds)))
    if args.previous:
        query.append(("previous", "true"))
    response = await kube.request(
        ctx,
        "GET",
        namespaced("v1", namespace, "pods", pod_name) + "/log",
        f"k8s get logs of pod {namespace}/{pod_name}",
        query=query,
        accept="text/plain",
        max_bytes=args.max_bytes,
    )
    raw = response.data
    truncated = response.truncated or len(raw) > args.max_bytes
    summary = f"retrieved logs for pod {namespace}/{pod_name}"
    output = LogsOutput(
        namespace=namespace,
        pod_name=pod_name,
        container=container,
        tail_lines=args.tail_lines,
        since_seconds=args.since_seconds,
        previous=args.previous,
        source=SOURCE,
        bytes=0,
        line_count=0,
        truncated=False,
        logs="",
        summary=summary,
        output=summary,
        exit_code=0,
    )
    logs = raw[: args.max_bytes].decode("utf-8", "replace")
    budget = ctx.command_output_limit
    fitted = head_within(logs, budget, note="")
    output.logs = fitted
    output.truncated = truncated or len(fitted) < len(logs)
    output.bytes = len(fitted.encode())
    output.line_count = len(fitted.splitlines())
    return ToolResult(output=output, logs=summary_log(summary))


# declarations ------------------------------------------------------------------------------------


def _read_tool(
    handler: Handler[A, Out],
    *,
    arguments: type[A],
    output: type[Out],
    name: str,
    description: str,
    timeout: int,
    cost: CostHint,
    example: dict[str, Any],
) -> Tool:
    return cluster_tool(
        handler,
        arguments=arguments,
        output=output,
        name=name,
        description=description,
        scope=Scope.CLUSTER,
        risk=RiskLevel.LOW,
        approval=False,
        side_effects=SideEffects.NONE,
        idempotency=Idempotency.GUARANTEED,
        timeout=timeout,
        output_kb=2048,
        cost=cost,
        postconditions=READ_POSTCONDITIONS,
        examples=[example],
    )


def tools(kube: Kube) -> list[Tool]:
    """The read tools, bound to the replica's cluster access."""

    async def get_pods(ctx: ToolContext, args: PodsArgs) -> ToolResult[PodsOutput]:
        return await _get_pods(kube, ctx, args)

    async def get_services(ctx: ToolContext, args: ServicesArgs) -> ToolResult[ServicesOutput]:
        return await _get_services(kube, ctx, args)

    async def get_deployments(
        ctx: ToolContext, args: DeploymentsArgs
    ) -> ToolResult[DeploymentsOutput]:
        return await _get_deployments(kube, ctx, args)

    async def get_images(ctx: ToolContext, args: ImagesArgs) -> ToolResult[ImagesOutput]:
        return await _get_images(kube, ctx, args)

    async def get_logs(ctx: ToolContext, args: LogsArgs) -> ToolResult[LogsOutput]:
        return await _get_logs(kube, ctx, args)

    return [
        _read_tool(
            get_pods,
            arguments=PodsArgs,
            output=PodsOutput,
            name="k8s.get_pods",
            description="List Kubernetes pods in a namespace using the Kubernetes SDK.",
            timeout=30,
            cost=CostHint.LOW,
            example={
                "namespace": EXAMPLE_NAMESPACE,
                "label_selector": "app=workspace",
                "max_pods": 50,
            },
        ),
        _read_tool(
            get_services,
            arguments=ServicesArgs,
            output=ServicesOutput,
            name="k8s.get_services",
            description="List Kubernetes services in a namespace using the Kubernetes SDK.",
            timeout=30,
            cost=CostHint.LOW,
            example={"namespace": EXAMPLE_NAMESPACE, "max_services": 50},
        ),
        _read_tool(
            get_deployments,
            arguments=DeploymentsArgs,
            output=DeploymentsOutput,
            name="k8s.get_deployments",
            description="List Kubernetes deployments in a namespace using the Kubernetes SDK.",
            timeout=30,
            cost=CostHint.LOW,
            example={"namespace": EXAMPLE_NAMESPACE, "include_containers": True},
        ),
        _read_tool(
            get_images,
            arguments=ImagesArgs,
            output=ImagesOutput,
            name="k8s.get_images",
            description="Aggregate container images used by pods in a namespace.",
            timeout=45,
            cost=CostHint.MEDIUM,
            example={"namespace": EXAMPLE_NAMESPACE, "max_images": 200},
        ),
        _read_tool(
            get_logs,
            arguments=LogsArgs,
            output=LogsOutput,
            name="k8s.get_logs",
            description="Fetch logs from a Kubernetes pod container.",
            timeout=30,
            cost=CostHint.MEDIUM,
            example={
                "namespace": EXAMPLE_NAMESPACE,
                "pod_name": "workspace-abc123",
                "tail_lines": 200,
            },
        ),
    ]
