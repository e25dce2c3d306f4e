"""k8s.* — the Kubernetes read and delivery tools (contract §4.2, §4.3, §5.1, §13).

A factory family: `family(toolbox)` makes the five read tools (`k8s_read.py`) and the three
delivery tools (`k8s_delivery.py`), whose handlers share the replica's Kubernetes API client
(`serve_app/runtime/kube_api.py`, made on first use through `toolbox.clients`). The `kubernetes`
library is imported only when that client is made, never when the catalog is read.

What every tool here shares:

- **Cluster scope.** The tools talk to the API server, not to the session's workspace: they run
  only for sessions whose runtime is `kubernetes` (the session manager hides and denies them on
  local sessions, contract §5.1 step 2; the handlers refuse too, for a caller that reaches the
  executor directly), and the policy engine lets only `devops` and `platform_admin` call them.
- **Namespace** = the `namespace` argument, else the session runtime's namespace, else
  `WORKSPACE_K8S_NAMESPACE`, else `default`; it must be a DNS label and pass the session's
  `allowed_k8s_namespaces` (the engine checks the argument; the handler checks the namespace it
  resolved, so a default cannot slip past the allowlist).
- **Delivery gate.** `k8s.apply_manifest`, `k8s.rollout_status` and `k8s.restart_deployment` run
  only with `WORKSPACE_ENABLE_K8S_DELIVERY_TOOLS=true`. Otherwise their capability carries the
  `DELIVERY_TOOLS_DISABLED` precondition, which the session manager reads as a runtime denial
  (hidden from the session's tool list; an invocation is denied 403 `policy_denied` "k8s delivery
  tools are disabled by configuration", approval or not), and their handlers refuse.
- **Requests** go through `Kube.request`: raw JSON over the client's connection pool (no model
  (de)serialisation, so objects the client's models do not know pass unchanged), every request
  with a connect and read timeout within the tool's deadline, responses read up to a cap. API
  errors map to the contract's codes: 404 `not_found`; 401/403 `policy_denied`; 400/422
  `invalid_argument`; 408/504 and a request that runs out of time `timeout`; anything else
  (409, 429, 5xx, an unreachable server, no configuration) `execution_failed`.
- **Outputs** never carry Secret data: no tool reads Secrets, environment values, ConfigMap data
  or annotations; lists are bounded by their `max_*` argument and fitted to the output limit.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from typing_extensions import Unpack

from serve_app.config import Settings
from serve_app.domain import policy
from serve_app.domain.capability import (
    Capability,
    Constraints,
    Idempotency,
    NamedField,
    Observability,
    PolicyMetadata,
    RiskLevel,
    Scope,
    SideEffects,
)
from serve_app.domain.errors import ErrorCode, ServiceError, invalid_argument, policy_denied
from serve_app.domain.models import LogLine, utcnow
from serve_app.domain.sessions import DELIVERY_TOOLS_DISABLED, KUBERNETES_RUNTIME_REQUIRED
from serve_app.tools.base import Tool, ToolContext, ToolResult
from serve_app.tools.declare import Arguments, Metadata, Output, build
from serve_app.tools.family import KUBERNETES_API, Clients, Toolbox
from serve_app.tools.fitting import leading, room_left

A = TypeVar("A", bound=Arguments)
Out = TypeVar("Out", bound=Output)

CLIENT_KEY = KUBERNETES_API
SOURCE = "k8s_sdk"
DEFAULT_NAMESPACE = "default"
EXAMPLE_NAMESPACE = "swe-ai-fleet"
CONNECT_TIMEOUT_S = 5.0
DEADLINE_MARGIN_S = 0.5
"""Time kept back from the tool's deadline so a request that runs out of time is reported by the
tool (with what it knows) rather than cut off by the executor."""
RESPONSE_MAX_BYTES = 64 * 1024 * 1024
MESSAGE_MAX_CHARS = 500
CLUSTER_PRECONDITION = "principal must have cluster-scope access"

PERMISSIONS: dict[str, frozenset[tuple[str, str, str]]] = {
    "k8s.get_pods": frozenset({("", "pods", "list")}),
    "k8s.get_services": frozenset({("", "services", "list")}),
    "k8s.get_deployments": frozenset({("apps", "deployments", "list")}),
    "k8s.get_images": frozenset({("", "pods", "list")}),
    "k8s.get_logs": frozenset({("", "pods/log", "get")}),
    "k8s.apply_manifest": frozenset(
        (group, resource, verb)
        for group, resource in (("", "configmaps"), ("", "services"), ("apps", "deployments"))
        for verb in ("get", "create", "update")
    ),
    "k8s.rollout_status": frozenset({("apps", "deployments", "get")}),
    "k8s.restart_deployment": frozenset(
        {("apps", "deployments", "get"), ("apps", "deployments", "update")}
    ),
}
"""What each tool asks the API server for, as RBAC (apiGroup, resource, verb) in its target
namespace: the identity the executor replicas run as needs these there (contract §11; deploy/
grants the read tools to `workspace-runtime` and all of them to `workspace-delivery`)."""

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_dns_label(value: str) -> bool:
    """A DNS-1123 label (namespaces, container names): ≤ 63 characters of `[a-z0-9-]`."""
    return len(value) <= 63 and bool(_LABEL.fullmatch(value))


def is_dns_subdomain(value: str) -> bool:
    """A DNS-1123 subdomain (object names): ≤ 253 characters."""
    return len(value) <= 253 and bool(_SUBDOMAIN.fullmatch(value))


def object_name(value: str, what: str) -> str:
    """`value` trimmed, if it is a valid object name; else `invalid_argument`."""
    name = value.strip()
    if not is_dns_subdomain(name):
        raise invalid_argument(f"{what} must be a DNS-1123 subdomain (lower-case), got {name!r}")
    return name


# the namespace rule ------------------------------------------------------------------------------

# The policy engine's namespace rule alone, applied by the handlers to the namespace they resolved
# (the engine sees only the argument, and skips the rule when the argument is left out).
_NAMESPACE_RULE = Capability(
    name="k8s.namespace",
    description="The allowed_k8s_namespaces rule.",
    input_schema={"type": "object", "properties": {}, "required": []},
    output_schema={"type": "object", "properties": {}},
    scope=Scope.WORKSPACE,
    side_effects=SideEffects.NONE,
    risk_level=RiskLevel.LOW,
    requires_approval=False,
    idempotency=Idempotency.GUARANTEED,
    constraints=Constraints(timeout_seconds=1),
    policy=PolicyMetadata(namespace_fields=[NamedField(field="namespace")]),
    observability=Observability(span_name="k8s.namespace"),
)


def resolve_namespace(ctx: ToolContext, requested: str, fallback: str) -> str:
    """The namespace a call acts in: the argument, else the session runtime's namespace, else
    `fallback` (`WORKSPACE_K8S_NAMESPACE`), else `default`; checked against the session's
    `allowed_k8s_namespaces`."""
    candidates = (requested, ctx.session.runtime.namespace or "", fallback, DEFAULT_NAMESPACE)
    namespace = next(value.strip() for value in candidates if value.strip())
    if not is_dns_label(namespace):
        raise invalid_argument(
            f"namespace must be a DNS-1123 label (lower-case, ≤ 63 characters), got {namespace!r}"
        )
    decision = policy.evaluate(_NAMESPACE_RULE, ctx.session, {"namespace": namespace}, True)
    if not decision.allowed:
        raise policy_denied(f"{decision.reason}: {namespace}")
    return namespace


# requests ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    data: bytes
    truncated: bool = False
    """The body was longer than the cap the caller read up to."""

    def json(self) -> Any:
        try:
            return json.loads(self.data)
        except ValueError:
            raise ServiceError(
                ErrorCode.EXECUTION_FAILED, "the Kubernetes API answered with invalid JSON"
            ) from None


def _status_message(data: bytes) -> str:
    """The `message` of a Kubernetes `Status` body, else the start of the body."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text: str = body["message"]
    else:
        text = data[:MESSAGE_MAX_CHARS].decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:MESSAGE_MAX_CHARS] or "no message"


def api_error(status: int, data: bytes, what: str) -> ServiceError:
    """The contract error for an API answer of `status`."""
    message = f"{what}: {_status_message(data)} (HTTP {status})"
    if status == 404:
        return ServiceError(ErrorCode.NOT_FOUND, message)
    if status in (401, 403):
        return ServiceError(ErrorCode.POLICY_DENIED, f"the Kubernetes API refused {message}")
    if status in (400, 422):
        return ServiceError(ErrorCode.INVALID_ARGUMENT, message)
    if status in (408, 504):
        return ServiceError(ErrorCode.TIMEOUT, message, retryable=True)
    return ServiceError(
        ErrorCode.EXECUTION_FAILED,
        message,
        retryable=status == 409 or status == 429 or status >= 500,
    )


def _transport_error(exc: Exception, what: str, timeouts: tuple[float, float]) -> ServiceError:
    """The contract error for a request that got no answer."""
    import urllib3.exceptions as http

    reason: object = exc.reason if isinstance(exc, http.MaxRetryError) else exc
    # urllib3 makes a refused connection a kind of connect timeout: tell them apart first.
    if not isinstance(reason, http.NewConnectionError):
        if isinstance(reason, http.ConnectTimeoutError):
            return ServiceError(
                ErrorCode.TIMEOUT,
                f"{what}: the Kubernetes API did not accept a connection within {timeouts[0]:.1f}s",
                retryable=True,
            )
        if isinstance(reason, http.TimeoutError | TimeoutError):
            return ServiceError(
                ErrorCode.TIMEOUT,
                f"{what}: the Kubernetes API did not answer within {timeouts[1]:.1f}s",
                retryable=True,
            )
    detail = " ".join(str(reason).split())[:MESSAGE_MAX_CHARS]
    return ServiceError(
        ErrorCode.EXECUTION_FAILED,
        f"{what}: the Kubernetes API is unreachable ({detail})",
        retryable=True,
    )


class Kube:
    """The tools' access to the cluster: the replica's API client (made on first use) and the
    namespace the settings name by default."""

    def __init__(self, settings: Settings, clients: Clients) -> None:
        self.settings = settings
        self._clients = clients

    @property
    def delivery_enabled(self) -> bool:
        return self.settings.enable_k8s_delivery_tools

    def api(self) -> Any:
        """The replica's `kubernetes.client.ApiClient`."""

        def make() -> Any:
            from serve_app.runtime.kube_api import api_client

            return api_client(self.settings)

        try:
            return self._clients.get(CLIENT_KEY, make)
        except RuntimeError as exc:
            raise ServiceError(
                ErrorCode.EXECUTION_FAILED, f"the Kubernetes API is not configured: {exc}"
            ) from None

    def namespace(self, ctx: ToolContext, requested: str) -> str:
        return resolve_namespace(ctx, requested, self.settings.k8s_namespace)

    async def request(
        self,
        ctx: ToolContext,
        method: str,
        path: str,
        what: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        accept: str = "application/json",
        max_bytes: int = RESPONSE_MAX_BYTES,
        allow: Sequence[int] = (),
    ) -> Response:
        """One API request, within the tool's deadline: its answer (up to `max_bytes` of body),
        or the contract error for a failure. Statuses in `allow` are answers, not errors."""
        read_timeout = ctx.remaining() - DEADLINE_MARGIN_S
        if read_timeout <= 0:
            raise ServiceError(
                ErrorCode.TIMEOUT, f"{what}: no time left for the Kubernetes API", retryable=True
            )
        connect_timeout = min(CONNECT_TIMEOUT_S, read_timeout)
        api = self.api()

        def call() -> Response:
            headers = {"Accept": accept}
            if body is not None:
                headers["Content-Type"] = "application/json"
            params = api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            answer = api.call_api(*params, _request_timeout=(connect_timeout, read_timeout))
            raw = answer.response
            data: bytes = raw.read(amt=max_bytes + 1)
            truncated = len(data) > max_bytes
            if truncated:
                raw.close()
            else:
                raw.release_conn()
            return Response(answer.status, data[:max_bytes], truncated)

        try:
            response: Response = await ctx.blocking(call)
        except ServiceError:
            raise
        except Exception as exc:
            from kubernetes.client.exceptions import ApiException

            if isinstance(exc, ApiException):  # raised for TLS failures (status 0)
                detail = " ".join(str(exc.reason).split())[:MESSAGE_MAX_CHARS]
                raise ServiceError(
                    ErrorCode.EXECUTION_FAILED,
                    f"{what}: the Kubernetes API is unreachable ({detail})",
                    retryable=True,
                ) from None
            raise _transport_error(exc, what, (connect_timeout, read_timeout)) from None
        if response.status >= 400 and response.status not in allow:
            raise api_error(response.status, response.data, what)
        return response

    async def get_json(self, ctx: ToolContext, path: str, what: str, **query: str) -> Any:
        """A GET answered with a JSON object."""
        response = await self.request(ctx, "GET", path, what, query=list(query.items()))
        found = response.json()
        if not isinstance(found, dict):
            raise ServiceError(ErrorCode.EXECUTION_FAILED, f"{what}: unexpected answer")
        return found

    async def list_items(
        self,
        ctx: ToolContext,
        path: str,
        what: str,
        *,
        label_selector: str,
        field_selector: str,
        limit: int,
        pages: int = 1,
    ) -> tuple[list[dict[str, Any]], bool]:
        """The items of a list, at most `limit` per page and `pages` pages, and whether more
        remained (a server that ignores `limit` answers everything at once)."""
        query: dict[str, str] = {"limit": str(limit)}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        items: list[dict[str, Any]] = []
        for _ in range(pages):
            answer = await self.get_json(ctx, path, what, **query)
            items.extend(item for item in answer.get("items") or [] if isinstance(item, dict))
            token = (answer.get("metadata") or {}).get("continue") or ""
            if not token:
                return items, False
            query["continue"] = token
        return items, True


def namespaced(group_version: str, namespace: str, resource: str, name: str = "") -> str:
    """The API path of a namespaced collection or object (`v1` or `apps/v1`)."""
    root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    path = f"{root}/namespaces/{quote(namespace, safe='')}/{resource}"
    return f"{path}/{quote(name, safe='')}" if name else path


# shared output pieces ----------------------------------------------------------------------------


class Summary(Output):
    """What every k8s.* output ends with: one line saying what was done (`output` repeats it)."""

    summary: str
    output: str
    exit_code: int


def summary_log(summary: str) -> list[LogLine]:
    return [LogLine(at=utcnow(), channel="stdout", message=summary)]


def fit(output: Out, field: str, items: Sequence[Any], limit: int) -> tuple[list[Any], bool]:
    """The leading `items` that fit in `output`'s `field` within `limit` bytes, and whether any
    were left out."""
    setattr(output, field, [])
    kept = leading(items, room_left(output, limit))
    return kept, len(kept) < len(items)


def labels(raw: Any) -> dict[str, str]:
    """A label or selector map, strings only."""
    if not isinstance(raw, dict):
        return {}
    return {str(key): str(value) for key, value in raw.items()}


def meta(item: dict[str, Any]) -> dict[str, Any]:
    found = item.get("metadata")
    return found if isinstance(found, dict) else {}


def section(item: dict[str, Any], key: str) -> dict[str, Any]:
    found = item.get(key)
    return found if isinstance(found, dict) else {}


def integer(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# declaration -------------------------------------------------------------------------------------

Handler = Callable[[ToolContext, A], Awaitable[ToolResult[Out]]]


def cluster_tool(
    handler: Handler[A, Out],
    *,
    arguments: type[A],
    output: type[Out],
    delivery: Kube | None = None,
    **metadata: Unpack[Metadata],
) -> Tool:
    """A cluster-scope tool whose `namespace` argument the policy engine checks against
    `allowed_k8s_namespaces`. `delivery`: a delivery tool, gated by the settings."""
    preconditions = [CLUSTER_PRECONDITION, *metadata.get("preconditions", ())]
    if delivery is not None:
        preconditions.append("WORKSPACE_ENABLE_K8S_DELIVERY_TOOLS=true on the server")
        if not delivery.delivery_enabled:
            preconditions.append(DELIVERY_TOOLS_DISABLED)
    metadata["preconditions"] = preconditions
    made = build(_guarded(handler, delivery), arguments=arguments, output=output, **metadata)
    capability = made.capability
    rules = capability.policy.model_copy(
        update={"namespace_fields": [NamedField(field="namespace")]}
    )
    return Tool(capability.model_copy(update={"policy": rules}), made.handler, made.arguments)


def _guarded(handler: Handler[A, Out], delivery: Kube | None) -> Handler[A, Out]:
    """`handler`, refusing a session without a kubernetes runtime and, for a delivery tool, a
    replica whose settings keep the delivery tools off (the session manager denies both first;
    this holds for a caller that reaches the executor directly)."""

    async def guarded(ctx: ToolContext, args: A) -> ToolResult[Out]:
        if ctx.session.runtime.kind != "kubernetes":
            raise policy_denied(KUBERNETES_RUNTIME_REQUIRED)
        if delivery is not None and not delivery.delivery_enabled:
            raise policy_denied(DELIVERY_TOOLS_DISABLED)
        return await handler(ctx, args)

    return guarded


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# the family --------------------------------------------------------------------------------------


def family(toolbox: Toolbox) -> list[Tool]:
    """The k8s.* tools, sharing the replica's API client."""
    from serve_app.tools import k8s_delivery, k8s_read

    kube = Kube(toolbox.settings, toolbox.clients)
    return [*k8s_read.tools(kube), *k8s_delivery.tools(kube)]
