"""What the API server does to an object on its way into storage: Status errors with the real
reasons and messages, name and label validation, server-set metadata, the patch flavours, and
the defaults of the kinds the backend uses."""

from __future__ import annotations

import base64
import copy
import datetime
import itertools
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import jsonpatch

from tests.support.kube.selectors import label_key_problem, label_value_problem

JSON = dict[str, Any]


class ApiError(Exception):
    """An error the API server answers with a `Status` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details) if details else None

    def body(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


def qualified(plural: str, group: str) -> str:
    """How messages name a resource: `pods`, `deployments.apps`."""
    return f"{plural}.{group}" if group else plural


def _details(plural: str, group: str, name: str) -> JSON:
    details: JSON = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(plural, group)} "{name}" not found',
        _details(plural, group, name),
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(plural, group)} "{name}" already exists',
        _details(plural, group, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def resource_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; `causes` are (field, reason, message) as in FieldValueInvalid/Required."""
    summary = ", ".join(f"{field}: {message}" for field, _, message in causes)
    if len(causes) > 1:
        summary = f"[{summary}]"
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {summary}',
        {
            "name": name,
            "kind": kind,
            "causes": [
                {"reason": reason, "message": message, "field": field}
                for field, reason, message in causes
            ],
        },
    )


def success_status(plural: str, group: str, name: str, uid: str) -> JSON:
    details = _details(plural, group, name)
    details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def now() -> str:
    """RFC 3339 in seconds and UTC, as the API server writes timestamps."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
# Kinds whose names are DNS labels (at most 63 characters); the others are subdomains (253).
_LABEL_NAMED = frozenset({"services", "namespaces"})
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def name_problem(plural: str, name: str) -> str | None:
    if plural in _LABEL_NAMED:
        if len(name) > 63:
            return "must be no more than 63 characters"
        return None if _DNS_LABEL.match(name) else _LABEL_RULE
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if _DNS_SUBDOMAIN.match(name) else _SUBDOMAIN_RULE


def validate_metadata(kind: str, plural: str, obj: Mapping[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    causes: list[tuple[str, str, str]] = []
    problem = name_problem(plural, name)
    if problem is not None:
        causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {problem}'))
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and not isinstance(value, Mapping):
            causes.append((f"metadata.{field}", "FieldValueInvalid", "must be a map"))
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str):
            causes.append((f"metadata.labels[{key}]", "FieldValueInvalid", "must be a string"))
            continue
        key_problem = label_key_problem(key)
        if key_problem is not None:
            causes.append(
                ("metadata.labels", "FieldValueInvalid", f'Invalid value: "{key}": {key_problem}')
            )
        value_problem = label_value_problem(value)
        if value_problem is not None:
            causes.append(
                (
                    "metadata.labels",
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": {value_problem}',
                )
            )
    if causes:
        raise invalid(kind, name, causes)


def validate_kind(kind: str, plural: str, obj: Mapping[str, Any]) -> None:
    """The few spec checks that catch real mistakes early (the rest is accepted as is)."""
    name = str((obj.get("metadata") or {}).get("name", ""))
    causes: list[tuple[str, str, str]] = []
    if plural == "pods":
        causes += _container_problems("spec", obj.get("spec") or {})
    elif plural == "deployments":
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        causes += _container_problems("spec.template.spec", template.get("spec") or {})
        selector = (spec.get("selector") or {}).get("matchLabels")
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not spec.get("selector"):
            causes.append(("spec.selector", "FieldValueRequired", "Required value"))
        elif selector and any(labels.get(k) != v for k, v in selector.items()):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    "Invalid value: `selector` does not match template `labels`",
                )
            )
    if causes:
        raise invalid(kind, name, causes)


def _container_problems(path: str, spec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append((f"{path}.containers", "FieldValueRequired", "Required value"))
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            where = f"{path}.{field}[{index}]"
            name = container.get("name") or ""
            if not name:
                causes.append((f"{where}.name", "FieldValueRequired", "Required value"))
            elif not _DNS_LABEL.match(name) or len(name) > 63:
                causes.append(
                    (
                        f"{where}.name",
                        "FieldValueInvalid",
                        f'Invalid value: "{name}": {_LABEL_RULE}',
                    )
                )
            elif name in seen:
                causes.append(
                    (f"{where}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
                )
            seen.add(name)
            if not container.get("image"):
                causes.append((f"{where}.image", "FieldValueRequired", "Required value"))
    return causes


class Counter:
    """The cluster's resourceVersion sequence."""

    def __init__(self) -> None:
        self._next = itertools.count(1000)
        self.current = 999

    def bump(self) -> str:
        self.current = next(self._next)
        return str(self.current)


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))


def new_metadata(obj: JSON, *, namespace: str | None, rv: Counter) -> None:
    """Server-set metadata on create (uid, resourceVersion, creationTimestamp, generation)."""
    meta = obj.setdefault("metadata", {})
    if namespace is not None:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta["uid"] = str(uuid.uuid4())
    meta["resourceVersion"] = rv.bump()
    meta["creationTimestamp"] = now()
    meta["generation"] = 1
    for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(server_owned, None)


def carry_metadata(new: JSON, old: Mapping[str, Any], *, rv: Counter) -> None:
    """On update: keep what clients cannot change, bump resourceVersion and, when anything but
    metadata and status changed, the generation."""
    meta = new.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    for kept in ("uid", "creationTimestamp", "namespace", "name"):
        if kept in old_meta:
            meta[kept] = old_meta[kept]
        else:
            meta.pop(kept, None)
    generation = int(old_meta.get("generation", 1))
    if _spec_part(new) != _spec_part(old):
        generation += 1
    meta["generation"] = generation
    meta["resourceVersion"] = rv.bump()


def _spec_part(obj: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (`application/merge-patch+json`): null removes a key."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# The merge keys of the lists that strategic merge patches merge item by item.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "tolerations": "key",
    "conditions": "type",
}


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """`application/strategic-merge-patch+json` (and apply), approximately: a merge patch whose
    lists of containers, env, volumes, volume mounts, ports, … merge item by item on their merge
    key; other lists are replaced; no `$patch`/`$retainKeys` directives."""
    if isinstance(patch, list) and isinstance(target, list) and field in _MERGE_KEYS:
        key = _MERGE_KEYS[field]
        if all(isinstance(item, Mapping) and key in item for item in [*target, *patch]):
            merged = [copy.deepcopy(item) for item in target]
            for item in patch:
                for index, existing in enumerate(merged):
                    if existing[key] == item[key]:
                        merged[index] = strategic_merge(existing, item)
                        break
                else:
                    merged.append(copy.deepcopy(item))
            return merged
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge(result.get(key), value, key)
    return result


def json_patch(target: Mapping[str, Any], operations: list[Any]) -> JSON:
    try:
        patched: JSON = jsonpatch.apply_patch(dict(target), operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
        ) from None
    return patched


def apply_defaults(plural: str, obj: JSON, ips: Any) -> None:
    """The defaults a real server fills in (on create and update) for the kinds the backend
    uses; a Secret's `stringData` is folded into `data`."""
    spec = obj.get("spec")
    if plural == "pods" and isinstance(spec, dict):
        _pod_spec_defaults(spec)
    elif plural == "deployments" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
        )
        template_spec = (spec.get("template") or {}).get("spec")
        if isinstance(template_spec, dict):
            _pod_spec_defaults(template_spec)
    elif plural == "services":
        service = obj.setdefault("spec", {})
        service.setdefault("type", "ClusterIP")
        service.setdefault("sessionAffinity", "None")
        if service.get("clusterIP") in (None, "") and service["type"] != "ExternalName":
            service["clusterIP"] = next(ips)
            service["clusterIPs"] = [service["clusterIP"]]
        for port in service.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif plural == "namespaces":
        obj["spec"] = {"finalizers": ["kubernetes"]}
    elif plural == "secrets":
        obj.setdefault("type", "Opaque")
        _fold_string_data(obj)


def initial_status(plural: str, obj: JSON) -> None:
    """The status an object starts with (what a client sends there is dropped)."""
    if plural == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
    elif plural == "deployments":
        obj["status"] = {}
    elif plural == "services":
        obj["status"] = {"loadBalancer": {}}
    elif plural == "namespaces":
        obj["status"] = {"phase": "Active"}


def _pod_spec_defaults(spec: JSON) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            image = str(container.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")


def _qos_class(spec: Mapping[str, Any]) -> str:
    containers = list(spec.get("containers") or [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(kind) is not None
        and (r.get("requests") or {}).get(kind, (r.get("limits") or {}).get(kind))
        == (r.get("limits") or {}).get(kind)
        for r in resources
        for kind in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _fold_string_data(obj: JSON) -> None:
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def cluster_ips() -> Any:
    """10.96.0.10, 10.96.0.11, … for services without a clusterIP."""
    return (f"10.96.{n // 250}.{n % 250 + 1}" for n in itertools.count(9))
