"""The API server: kmock's `KubernetesEmulator` (HTTP parsing, discovery of the bundled built-in
resources, the object store with its history, watch streams) with the semantics the backend
needs put in front of its generic handlers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import functools
import gzip
import importlib.resources
import json
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import yaml
from aiohttp import web
from kmock._internal.rendering import ReactionMismatchError  # not in kmock's __all__

from tests.support.kube.execws import ExecRecord, ExecSession, choose_protocol
from tests.support.kube.kubelet import Kubelet, PodRuntime, Readiness
from tests.support.kube.objects import (
    JSON,
    ApiError,
    Counter,
    already_exists,
    apply_defaults,
    bad_request,
    carry_metadata,
    cluster_ips,
    generated_name,
    initial_status,
    invalid,
    json_patch,
    merge_patch,
    new_metadata,
    not_found,
    now,
    resource_not_found,
    strategic_merge,
    success_status,
    validate_kind,
    validate_metadata,
)
from tests.support.kube.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

PODS = kmock.resource("", "v1", "pods")
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
NAMESPACES = kmock.resource("", "v1", "namespaces")
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-stand-in",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_TERMINAL = frozenset({"Succeeded", "Failed"})
_TRUE = frozenset({"true", "1", "yes"})


@dataclass
class Rollout:
    """How deployments roll out; the test may change it at any time.

    `delay_seconds`: from a spec change to the status saying the rollout is complete.
    `stuck`: the status never completes (updatedReplicas 0, Available False)."""

    delay_seconds: float = 0.0
    stuck: bool = False


@functools.cache
def _bundled_resources() -> bytes:
    """kmock's bundled discovery data (what `resources.load_bundled()` reads, without its
    deprecated importlib call)."""
    packed = importlib.resources.files("kmock._internal").joinpath("resources.json.gz")
    return gzip.decompress(packed.read_bytes())


def api_version(resource: kmock.resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else str(resource.version)


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in _TRUE


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}") from None


class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus: server-set metadata, label/field selectors, paging, PUT replace,
    the four patch types with server-side apply creating, dry runs, status and scale
    subresources, pod logs and exec, a kubelet and a deployment controller."""

    def __init__(self, root: Path, readiness: Readiness, rollout: Rollout) -> None:
        super().__init__()
        self.resources.load_data(_bundled_resources())
        self.rv = Counter()
        self.ips = cluster_ips()
        self.rollout = rollout
        self.kubelet = Kubelet(root, readiness, self._write_pod_status, self._lookup)
        self.execs: list[ExecRecord] = []
        self._controllers: set[asyncio.Task[None]] = set()
        self._exec_sessions: set[ExecSession] = set()

    # --- kmock hooks -----------------------------------------------------------------------

    async def __call__(self, raw_request: web.BaseRequest) -> web.StreamResponse:
        # kmock 0.8 cannot parse /api/v1/namespaces[/{name}[/status|/finalize]] (it reads the
        # "namespaces" segment as the namespace prefix of a namespaced resource): parse those.
        parts = raw_request.path.strip("/").split("/")
        namespace_path = parts[:3] == ["api", "v1", "namespaces"] and (
            len(parts) <= 4 or (len(parts) == 5 and parts[4] in ("status", "finalize"))
        )
        if not namespace_path:
            return await super().__call__(raw_request)
        body = await raw_request.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        name = parts[3] if len(parts) > 3 else None
        request = kmock.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=body.decode(errors="replace"),
            action=_action(raw_request, name),
            resource=NAMESPACES,
            namespace=None,
            name=name,
            subresource=parts[4] if len(parts) > 4 else None,
        )
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as error:
            return await self._render_error(error)

    async def _handle(self, request: kmock.Request) -> web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        if raw.path in ("/version", "/version/"):
            return web.json_response(VERSION)
        resource = request.resource
        if resource is None or resource.plural is None:
            return await kmock.RawHandler._handle(self, request)  # discovery: kmock's
        # The test's own reactions (fault injection) first; once depleted, the stand-in.
        injected = await self._user_reaction(request)
        if injected is not None:
            return injected
        try:
            if _flag(raw.query, "watch"):
                self._selectors(raw.query, resource)  # refuse a bad selector with 400
                return await kmock.RawHandler._handle(self, request)
            return await self._route(request, raw, resource)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)
        except SelectorError as error:
            return web.json_response(bad_request(str(error)).body(), status=400)

    async def _user_reaction(self, request: kmock.Request) -> web.StreamResponse | None:
        """The answer of the first reaction the test added that takes the request (in kmock's
        priority order), or None; kmock's own fallbacks (priority -inf) are not tried."""
        payloads = [p for p in self._payloads if -math.inf not in p.priorities]
        payloads.sort(key=lambda p: tuple(-x for x in p.priorities) + (0,) * 8)
        for payload in payloads:
            if payload._disabled.is_set() or request not in payload._source:
                continue
            try:
                response: web.StreamResponse = await payload(request)
            except ReactionMismatchError:  # depleted, or a catcher without content
                payload._disabled.set()
                continue
            except NotImplementedError:
                continue
            return response
        return None

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        raw = request._raw_request
        assert raw is not None and request.resource is not None
        labels, fields = self._selectors(raw.query, request.resource)
        since = _int_param(raw.query, "resourceVersion") or 0
        timeout = _int_param(raw.query, "timeoutSeconds")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        stream = super()._serve_watch(request).__aiter__()
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    item = await asyncio.wait_for(anext(stream), remaining)
                except (StopAsyncIteration, TimeoutError):
                    return
                if isinstance(item, dict):
                    obj = item.get("object") or {}
                    meta = obj.get("metadata") or {}
                    if int(meta.get("resourceVersion") or 0) <= since:
                        continue
                    if not labels_match(labels, meta.get("labels")) or not fields_match(
                        fields, obj
                    ):
                        continue
                yield item
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    # --- the store -------------------------------------------------------------------------

    def _stored(self, resource: kmock.resource, namespace: str | None, name: str) -> JSON | None:
        key = (resource, namespace, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        if obj.deleted:
            return None
        return copy.deepcopy(dict(obj.last.raw))

    def _all(self, resource: kmock.resource, namespace: str | None) -> list[JSON]:
        found = [
            copy.deepcopy(dict(obj.last.raw))
            for (stored, ns, _), obj in self.objects.items()
            if stored == resource and not obj.deleted and (namespace is None or ns == namespace)
        ]
        return sorted(
            found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        )

    async def _save(self, resource: kmock.resource, obj: JSON, event: str) -> None:
        meta = obj["metadata"]
        key = (resource, meta.get("namespace"), meta["name"])
        stored = copy.deepcopy(obj)
        async with self._lock:
            if key in self.objects:
                self.objects[key].create(stored)
            else:
                self.objects[key] = stored
            await self._buses[resource].put({"type": event, "object": copy.deepcopy(stored)})

    async def _remove(self, resource: kmock.resource, obj: JSON) -> None:
        meta = obj["metadata"]
        key = (resource, meta.get("namespace"), meta["name"])
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self.rv.bump()
        async with self._lock:
            if key in self.objects and not self.objects[key].deleted:
                self.objects[key].delete()
            await self._buses[resource].put({"type": "DELETED", "object": gone})

    def _lookup(self, plural: str, namespace: str, name: str) -> JSON | None:
        return self._stored(kmock.resource("", "v1", plural), namespace, name)

    # --- routing ---------------------------------------------------------------------------

    def _info(self, resource: kmock.resource) -> kmock.ResourceInfo:
        if resource not in self.resources:
            raise resource_not_found()
        return self.resources[resource]

    def _selectors(self, query: Mapping[str, str], resource: kmock.resource) -> tuple[Any, Any]:
        return (
            parse_label_selector(query.get("labelSelector", "")),
            parse_field_selector(query.get("fieldSelector", ""), str(resource.plural)),
        )

    async def _route(
        self, request: kmock.Request, raw: web.BaseRequest, resource: kmock.resource
    ) -> web.StreamResponse:
        info = self._info(resource)
        namespace = request.namespace
        if info.namespaced is False and namespace is not None:
            raise resource_not_found()
        name, sub, method = request.name, request.subresource, raw.method
        if name is None:
            if method == "GET":
                return web.json_response(self._list(raw, resource, info, namespace))
            if method == "POST" and (namespace is not None or not info.namespaced):
                return await self._create(request, raw, resource, info, namespace)
            if method == "DELETE":
                return web.json_response(
                    await self._delete_collection(raw, resource, info, namespace)
                )
            raise ApiError(
                405,
                "MethodNotAllowed",
                f"the server does not allow this method on the requested resource ({method})",
            )
        if sub is None:
            if method == "GET":
                return web.json_response(self._get(resource, namespace, name))
            if method == "PUT":
                return await self._replace(request, raw, resource, info, namespace, name)
            if method == "PATCH":
                return await self._patch(request, raw, resource, info, namespace, name)
            if method == "DELETE":
                return web.json_response(await self._delete(raw, resource, namespace, name))
        elif sub == "status" and "status" in info.subresources:
            if method == "GET":
                return web.json_response(self._get(resource, namespace, name))
            if method in ("PUT", "PATCH"):
                return await self._update_status(request, raw, resource, namespace, name)
        elif sub == "log" and resource == PODS and method == "GET":
            return self._logs(raw, str(namespace), name)
        elif sub == "exec" and resource == PODS and method in ("GET", "POST"):
            return await self._exec(raw, str(namespace), name)
        elif sub == "scale" and "scale" in info.subresources:
            return await self._scale(request, raw, resource, str(namespace), name)
        raise resource_not_found()

    # --- reading ---------------------------------------------------------------------------

    def _get(self, resource: kmock.resource, namespace: str | None, name: str) -> JSON:
        obj = self._stored(resource, namespace, name)
        if obj is None:
            raise not_found(str(resource.plural), str(resource.group), name)
        return obj

    def _list(
        self,
        raw: web.BaseRequest,
        resource: kmock.resource,
        info: kmock.ResourceInfo,
        namespace: str | None,
    ) -> JSON:
        labels, fields = self._selectors(raw.query, resource)
        items = [
            obj
            for obj in self._all(resource, namespace)
            if labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)
        ]
        offset = 0
        token = raw.query.get("continue")
        if token:
            try:
                offset = int(json.loads(base64.b64decode(token))["offset"])
            except (ValueError, KeyError, binascii.Error, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid") from None
        metadata: JSON = {"resourceVersion": str(self.rv.current)}
        limit = _int_param(raw.query, "limit")
        page = items[offset:]
        if limit is not None and limit > 0 and len(page) > limit:
            page = page[:limit]
            following = offset + limit
            metadata["continue"] = base64.b64encode(
                json.dumps({"offset": following}).encode()
            ).decode()
            metadata["remainingItemCount"] = len(items) - following
        for item in page:  # items of a list carry no kind/apiVersion, as on a real server
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": f"{info.kind}List",
            "apiVersion": api_version(resource),
            "metadata": metadata,
            "items": page,
        }

    # --- writing ---------------------------------------------------------------------------

    @staticmethod
    def _json_body(request: kmock.Request) -> JSON:
        body = request.data
        if isinstance(body, dict):
            return copy.deepcopy(body)
        try:
            parsed = json.loads(request.body or b"null")
        except ValueError as exc:
            raise bad_request(f"the request body is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise bad_request("the request body must be a JSON object")
        return parsed

    def _prepare(self, obj: JSON, resource: kmock.resource, info: kmock.ResourceInfo) -> None:
        kind = obj.get("kind")
        if kind not in (None, "", info.kind) or obj.get("apiVersion") not in (
            None,
            "",
            api_version(resource),
        ):
            raise bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) and kind ({kind}) do "
                f"not match the resource {api_version(resource)}, {info.kind}"
            )
        obj["apiVersion"] = api_version(resource)
        obj["kind"] = info.kind
        apply_defaults(str(resource.plural), obj, self.ips)
        validate_metadata(str(info.kind), str(resource.plural), obj)
        validate_kind(str(info.kind), str(resource.plural), obj)

    async def _create(
        self,
        request: kmock.Request,
        raw: web.BaseRequest,
        resource: kmock.resource,
        info: kmock.ResourceInfo,
        namespace: str | None,
        body: JSON | None = None,
    ) -> web.Response:
        obj = body if body is not None else self._json_body(request)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if namespace is not None and meta.get("namespace") not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    str(info.kind),
                    "",
                    [
                        (
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            meta["name"] = generated_name(str(meta["generateName"]))
        if "status" in info.subresources or resource == NAMESPACES:
            obj.pop("status", None)
        self._prepare(obj, resource, info)
        name = str(meta["name"])
        if self._stored(resource, namespace, name) is not None:
            raise already_exists(str(resource.plural), str(resource.group), name)
        new_metadata(obj, namespace=namespace if info.namespaced else None, rv=self.rv)
        initial_status(str(resource.plural), obj)
        if not _dry_run(raw):
            await self._save(resource, obj, "ADDED")
            await self._after_write(resource, obj, created=True)
        return web.json_response(obj, status=201)

    async def _write(
        self,
        raw: web.BaseRequest,
        resource: kmock.resource,
        info: kmock.ResourceInfo,
        new: JSON,
        old: JSON,
    ) -> web.Response:
        """An update of the main resource: the status cannot change through it."""
        if "status" in info.subresources or resource == NAMESPACES:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        for kept in ("name", "namespace"):
            if kept in old["metadata"]:
                meta[kept] = old["metadata"][kept]
        self._prepare(new, resource, info)
        carry_metadata(new, old, rv=self.rv)
        if not _dry_run(raw):
            await self._save(resource, new, "MODIFIED")
            await self._after_write(resource, new, created=False)
        return web.json_response(new)

    async def _replace(
        self,
        request: kmock.Request,
        raw: web.BaseRequest,
        resource: kmock.resource,
        info: kmock.ResourceInfo,
        namespace: str | None,
        name: str,
    ) -> web.Response:
        body = self._json_body(request)
        body_name = (body.get("metadata") or {}).get("name")
        if body_name not in (None, "", name):
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        old = self._get(resource, namespace, name)  # PUT never creates (as for most kinds)
        return await self._write(raw, resource, info, body, old)

    async def _patch(
        self,
        request: kmock.Request,
        raw: web.BaseRequest,
        resource: kmock.resource,
        info: kmock.ResourceInfo,
        namespace: str | None,
        name: str,
    ) -> web.Response:
        content_type = raw.content_type
        old = self._stored(resource, namespace, name)
        if content_type == "application/apply-patch+yaml":
            if not raw.query.get("fieldManager"):
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                    "required for apply patch",
                )
            try:
                applied = yaml.safe_load(request.body or b"")
            except yaml.YAMLError as exc:
                raise bad_request(f"error decoding YAML: {exc}") from None
            if not isinstance(applied, dict):
                raise bad_request("the apply patch must be an object")
            if not applied.get("kind"):
                raise bad_request(f"Object 'Kind' is missing in '{json.dumps(applied)}'")
            applied_name = (applied.get("metadata") or {}).get("name")
            if applied_name not in (None, name):
                raise bad_request(
                    f"the name of the object ({applied_name}) does not match the name on the "
                    f"URL ({name})"
                )
            if old is None:
                applied.setdefault("metadata", {})["name"] = name
                return await self._create(request, raw, resource, info, namespace, applied)
            new = strategic_merge(old, applied)
        else:
            if old is None:
                raise not_found(str(resource.plural), str(resource.group), name)
            new = self._patched(request, content_type, old)
        return await self._write(raw, resource, info, new, old)

    def _patched(self, request: kmock.Request, content_type: str, old: JSON) -> JSON:
        try:
            patch = json.loads(request.body or b"null")
        except ValueError as exc:
            raise bad_request(f"the patch is not JSON: {exc}") from None
        if content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise bad_request("a JSON patch must be a list of operations")
            return json_patch(old, patch)
        if not isinstance(patch, dict):
            raise bad_request("the patch must be a JSON object")
        if content_type == "application/merge-patch+json":
            new: JSON = merge_patch(old, patch)
            return new
        if content_type == "application/strategic-merge-patch+json":
            strategic: JSON = strategic_merge(old, patch)
            return strategic
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json-patch+json, application/merge-patch+json, "
            f"application/apply-patch+yaml ({content_type})",
        )

    async def _update_status(
        self,
        request: kmock.Request,
        raw: web.BaseRequest,
        resource: kmock.resource,
        namespace: str | None,
        name: str,
    ) -> web.Response:
        old = self._get(resource, namespace, name)
        if raw.method == "PUT":
            patched = self._json_body(request)
        elif raw.content_type == "application/apply-patch+yaml":
            patched = strategic_merge(old, yaml.safe_load(request.body or b"") or {})
        else:
            patched = self._patched(request, raw.content_type, old)
        new = copy.deepcopy(old)
        new["status"] = patched.get("status") or {}
        new["metadata"]["resourceVersion"] = self.rv.bump()
        if not _dry_run(raw):
            await self._save(resource, new, "MODIFIED")
        return web.json_response(new)

    async def _delete(
        self, raw: web.BaseRequest, resource: kmock.resource, namespace: str | None, name: str
    ) -> JSON:
        obj = self._get(resource, namespace, name)
        if _dry_run(raw):
            return obj
        await self._delete_object(resource, obj)
        meta = obj["metadata"]
        if resource in (PODS, kmock.resource("", "v1", "services"), NAMESPACES):
            meta["deletionTimestamp"] = now()
            meta["deletionGracePeriodSeconds"] = 0
            if resource == NAMESPACES:
                obj["status"] = {"phase": "Terminating"}
            return obj
        return success_status(str(resource.plural), str(resource.group), name, meta["uid"])

    async def _delete_object(self, resource: kmock.resource, obj: JSON) -> None:
        meta = obj["metadata"]
        await self._remove(resource, obj)
        if resource == PODS:
            self.kubelet.stop(meta["namespace"], meta["name"])
        elif resource == NAMESPACES:
            # What the namespace controller does: everything in it goes.
            for (stored, ns, _), entry in list(self.objects.items()):
                if ns == meta["name"] and not entry.deleted:
                    await self._delete_object(stored, copy.deepcopy(dict(entry.last.raw)))

    async def _delete_collection(
        self,
        raw: web.BaseRequest,
        resource: kmock.resource,
        info: kmock.ResourceInfo,
        namespace: str | None,
    ) -> JSON:
        listed = self._list(raw, resource, info, namespace)
        if not _dry_run(raw):
            for item in listed["items"]:
                full = self._stored(
                    resource, item["metadata"].get("namespace"), item["metadata"]["name"]
                )
                if full is not None:
                    await self._delete_object(resource, full)
        return listed

    async def _after_write(self, resource: kmock.resource, obj: JSON, *, created: bool) -> None:
        if resource == PODS and created:
            self.kubelet.start(obj)
        elif resource == DEPLOYMENTS:
            await self._reconcile_deployment(obj)

    # --- deployments -----------------------------------------------------------------------

    async def _reconcile_deployment(self, obj: JSON) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"], meta["generation"])
        if self.rollout.stuck:
            await self._deployment_status(*key, complete=False)
        elif self.rollout.delay_seconds > 0:
            task = asyncio.get_running_loop().create_task(self._delayed_rollout(*key))
            self._controllers.add(task)
            task.add_done_callback(self._controllers.discard)
        else:
            await self._deployment_status(*key, complete=True)

    async def _delayed_rollout(self, namespace: str, name: str, generation: int) -> None:
        await asyncio.sleep(self.rollout.delay_seconds)
        await self._deployment_status(namespace, name, generation, complete=not self.rollout.stuck)

    async def _deployment_status(
        self, namespace: str, name: str, generation: int, *, complete: bool
    ) -> None:
        obj = self._stored(DEPLOYMENTS, namespace, name)
        if obj is None or obj["metadata"].get("generation") != generation:
            return  # deleted, or changed again: the newer write reconciles
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        stamp = now()
        if complete:
            counts = {
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
            conditions = [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{name}-stand-in" has successfully progressed.',
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
            ]
        else:
            counts = {
                "replicas": replicas,
                "updatedReplicas": 0,
                "readyReplicas": 0,
                "availableReplicas": 0,
                "unavailableReplicas": replicas,
            }
            conditions = [
                {
                    "type": "Available",
                    "status": "False",
                    "reason": "MinimumReplicasUnavailable",
                    "message": "Deployment does not have minimum availability.",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "ReplicaSetUpdated",
                    "message": f'ReplicaSet "{name}-stand-in" is progressing.',
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
            ]
        # Zero counts are left out, as Go's omitempty does on a real server.
        status: JSON = {"observedGeneration": generation}
        status.update({k: v for k, v in counts.items() if v})
        status["conditions"] = conditions
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = self.rv.bump()
        await self._save(DEPLOYMENTS, obj, "MODIFIED")

    async def _scale(
        self,
        request: kmock.Request,
        raw: web.BaseRequest,
        resource: kmock.resource,
        namespace: str,
        name: str,
    ) -> web.Response:
        obj = self._get(resource, namespace, name)
        if raw.method in ("PUT", "PATCH"):
            current = _scale_of(obj)
            if raw.method == "PUT":
                wanted = self._json_body(request)
            else:
                wanted = self._patched(request, raw.content_type, current)
            replicas = (wanted.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(
                    "Scale",
                    name,
                    [("spec.replicas", "FieldValueInvalid", f"Invalid value: {replicas!r}")],
                )
            new = copy.deepcopy(obj)
            new["spec"]["replicas"] = replicas
            await self._write(raw, resource, self._info(resource), new, obj)
            obj = self._get(resource, namespace, name)
        elif raw.method != "GET":
            raise resource_not_found()
        return web.json_response(_scale_of(obj))

    # --- pods: status, logs, exec ----------------------------------------------------------

    async def _write_pod_status(self, runtime: PodRuntime, status: JSON) -> bool:
        obj = self._stored(PODS, runtime.namespace, runtime.name)
        if obj is None or obj["metadata"].get("uid") != runtime.uid:
            return False
        phase = (obj.get("status") or {}).get("phase")
        if phase in _TERMINAL and phase != runtime.published_phase:
            return False  # ended by someone else (a test's status patch): leave it
        if runtime.scheduled:
            obj["spec"].setdefault("nodeName", "stand-in-node")
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = self.rv.bump()
        await self._save(PODS, obj, "MODIFIED")
        runtime.published_phase = status["phase"]
        return True

    def _pod_container(self, pod: JSON, name: str, wanted: str | None) -> str:
        spec = pod.get("spec") or {}
        names: list[str] = [c["name"] for c in spec.get("containers") or []]
        inits = [c["name"] for c in spec.get("initContainers") or []]
        if not wanted:
            if len(names) == 1:
                return names[0]
            message = (
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(names)}]"
            )
            if inits:
                message += f" or one of the init containers: [{' '.join(inits)}]"
            raise bad_request(message)
        if wanted not in names and wanted not in inits:
            raise bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted

    def _logs(self, raw: web.BaseRequest, namespace: str, name: str) -> web.Response:
        pod = self._get(PODS, namespace, name)
        container = self._pod_container(pod, name, raw.query.get("container"))
        runtime = self.kubelet.runtime(namespace, name)
        run = None
        if runtime is not None:
            run = runtime.containers.get(container) or runtime.inits.get(container)
        if _flag(raw.query, "previous"):
            raise bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        if run is not None and run.logs is None and "terminated" in run.state:
            return web.Response(body=b"", content_type="text/plain")
        if run is None or run.logs is None:
            reason = "ContainerCreating"
            if run is not None:
                reason = run.state.get("waiting", {}).get("reason", reason)
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        body = run.logs.render(
            tail_lines=_int_param(raw.query, "tailLines"),
            since_seconds=_int_param(raw.query, "sinceSeconds"),
            timestamps=_flag(raw.query, "timestamps"),
            limit_bytes=_int_param(raw.query, "limitBytes"),
        )
        return web.Response(body=body, content_type="text/plain")

    async def _exec(self, raw: web.BaseRequest, namespace: str, name: str) -> web.StreamResponse:
        pod = self._get(PODS, namespace, name)
        if raw.headers.get("Upgrade", "").lower() != "websocket":
            raise bad_request("Upgrade request required")
        query = raw.query
        argv = list(query.getall("command", []))
        stdin, stdout, stderr = (_flag(query, n) for n in ("stdin", "stdout", "stderr"))
        if not argv:
            raise bad_request("you must specify at least 1 command")
        if not (stdin or stdout or stderr):
            raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
        if _flag(query, "tty") and stderr:
            raise bad_request("tty and stderr cannot both be true")
        container = self._pod_container(pod, name, query.get("container"))
        phase = (pod.get("status") or {}).get("phase")
        if phase in _TERMINAL:
            raise bad_request(
                f"cannot exec into a container in a completed pod; current phase is {phase}"
            )
        runtime = self.kubelet.runtime(namespace, name)
        run = runtime.containers.get(container) if runtime is not None else None
        if runtime is None or run is None or not run.running or run.ns_pid is None:
            raise bad_request(f'unable to upgrade connection: container not found ("{container}")')
        protocol = choose_protocol(raw.headers.get("Sec-WebSocket-Protocol", ""))
        if protocol is None:
            raise bad_request(
                "unable to upgrade connection: the stand-in speaks v5.channel.k8s.io and "
                "v4.channel.k8s.io only"
            )
        record = ExecRecord(namespace, name, container, argv, protocol, stdin)
        self.execs.append(record)
        session = ExecSession(
            self.kubelet,
            runtime,
            run,
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            protocol=protocol,
            record=record,
        )
        self._exec_sessions.add(session)
        try:
            return await session.serve(raw)
        finally:
            self._exec_sessions.discard(session)

    async def close(self) -> None:
        for task in list(self._controllers):
            task.cancel()
        await self.kubelet.close()

    # --- for tests (through Cluster) -------------------------------------------------------

    async def edit(
        self, resource: kmock.resource, namespace: str | None, name: str, patch: JSON
    ) -> JSON:
        obj = self._get(resource, namespace, name)
        new: JSON = merge_patch(obj, patch)
        new["metadata"]["resourceVersion"] = self.rv.bump()
        await self._save(resource, new, "MODIFIED")
        return new


def _scale_of(obj: JSON) -> JSON:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
        },
    }


def _action(raw: web.BaseRequest, name: str | None) -> kmock.action | None:
    if raw.method == "GET":
        if _flag(raw.query, "watch"):
            return kmock.action.WATCH
        return kmock.action.LIST if name is None else kmock.action.FETCH
    if name is None:
        return kmock.action.CREATE if raw.method == "POST" else None
    return {"PATCH": kmock.action.UPDATE, "DELETE": kmock.action.DELETE}.get(raw.method)


def _dry_run(raw: web.BaseRequest) -> bool:
    return "All" in raw.query.getall("dryRun", [])
