"""An emulated Kubernetes API server (kmock's KubernetesEmulator) over real HTTP, in a thread of its own.

kmock 0.8 stores objects and merges patches; the gaps that matter to our operator and ffctl are closed
here so that kopf and the `kubernetes` client see what a real API server would do:
- on create: a uid, generation 1, creationTimestamp and resourceVersion;
- on every write: a new resourceVersion; a patch carrying a stale metadata.resourceVersion is a 409;
- a JSON patch whose `test` operation fails is a 422 (kopf's finalizer patches rely on it);
- the status subresource: a patch to .../status changes only status, a patch to the object never does;
- generation bumps when (and only when) a patch changes spec;
- garbage collection: deleting an owner deletes its dependents (ownerReferences by uid), as the
  background cascade of a real cluster does;
- `labelSelector` on lists (equality and existence terms);
- discovery for the resources used (v1/namespaces included: kopf waits for it before any watch);
- pod logs (`pods/<name>/log`) served from `Cluster.logs`, standing in for the kubelet;
- 404s worded as the API server words them (a missing object names itself; an unknown resource does not);
- history trimmed to the last version, and the request log to a recent window (kmock keeps both whole,
  and matches every request against the whole log: quadratic time on a 1,000-Job sweep).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import datetime
import itertools
import threading
import uuid

import aiohttp.web
import kmock
import yaml

_rv = itertools.count(1)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(base: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7386), as kmock applies it: dicts merge, None deletes, the rest replaces."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _selected(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class _Conflict(Exception):
    """A write against a stale resourceVersion."""


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
                                      "reason": reason, "message": message}, status=code)


def _failed_test(obj: dict, operations: list) -> str | None:
    """The path of the first JSON-patch `test` operation that does not hold on `obj` (RFC 6902), if any."""
    for op in operations:
        if not isinstance(op, dict) or op.get("op") != "test":
            continue
        node, missing = obj, False
        for part in op.get("path", "").split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                missing = True
                break
        if missing or node != op.get("value"):
            return op.get("path", "")
    return None


class Emulator(kmock.KubernetesEmulator):
    """KubernetesEmulator plus the API-server behaviour listed in the module docstring."""

    logs: dict[tuple[str, str], str]
    calls: collections.Counter
    # fault injection: (action, resource plural) -> how many of the next such requests answer 500, unapplied
    faults: collections.Counter

    async def _handle(self, request):
        # kmock matches each request against its whole request log (O(requests) each, quadratic in all):
        # the log keeps only the requests in flight (they must be in it), and `calls` counts the rest.
        self.calls[request.headers.get("User-Agent", ""), str(request.action).split(".")[-1].lower()] += 1
        self._inflight.add(id(request))
        self._requests[:] = [r for r in self._requests if id(r) in self._inflight]
        fault = (str(request.action).split(".")[-1].lower(), getattr(request.resource, "plural", None))
        if self.faults[fault] > 0:
            self.faults[fault] -= 1
            self._inflight.discard(id(request))
            return aiohttp.web.json_response({"kind": "Status", "status": "Failure", "reason": "InternalError",
                                              "message": "injected fault", "code": 500}, status=500)
        try:
            return await self._handle_emulated(request)
        finally:
            self._inflight.discard(id(request))

    async def _handle_emulated(self, request):
        key = (request.resource, request.namespace, request.name)
        if request.resource is not None and request.subresource == "log" and request.action == kmock.action.FETCH:
            return self._serve_log(request)
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == kmock.action.CREATE:
                meta = request.data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("generation", 1)
                meta.setdefault("creationTimestamp", _now())
                meta["resourceVersion"] = str(next(_rv))
            elif request.action == kmock.action.UPDATE and request.name is not None:
                try:
                    self._prepare_patch(request, key)
                except _Conflict:
                    return _status(409, "Conflict", f'the object has been modified; apply your changes to the '
                                                    f'latest version ("{request.name}": stale resourceVersion)')
        if request.action == kmock.action.UPDATE and isinstance(request.data, list) and key in self._objects:
            failed = _failed_test(self._objects[key].raw, request.data)
            if failed:
                return _status(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                               f"test operation on {failed} failed")
        writes = request.action in (kmock.action.DELETE, kmock.action.UPDATE) and request.name is not None
        owner_uid = self._uid(key) if writes else None
        try:
            response = await super()._handle(request)
        except kmock.KubernetesNotFoundError as error:
            return self._not_found(request, error)
        if writes and key in self._objects:
            if self._objects[key].deleted:  # deleted now, or when a patch removed its last finalizer
                if owner_uid:
                    await self._collect_dependents(owner_uid)
            else:
                self._objects[key].history = [self._objects[key].last.raw]
        return response

    @staticmethod
    def _not_found(request, error) -> aiohttp.web.Response:
        """A 404 worded as the API server words it: which object is missing, or that the resource is unknown."""
        resource = request.resource
        if isinstance(error, kmock.KubernetesObjectNotFoundError) and resource is not None:
            qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
            message = f'{qualified} "{request.name}" not found'
            details = {"name": request.name, "group": resource.group or "", "kind": resource.plural}
        else:
            message, details = "the server could not find the requested resource", {}
        return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 404,
                                          "reason": "NotFound", "message": message, "details": details}, status=404)

    def _uid(self, key) -> str | None:
        obj = self._objects[key] if key in self._objects else None
        return None if obj is None or obj.deleted else obj.raw.get("metadata", {}).get("uid")

    def _prepare_patch(self, request, key) -> None:
        """Turn a patch into what the API server would apply: subresource rules, generation, resourceVersion."""
        if key not in self._objects or self._objects[key].deleted:
            return  # kmock answers 404
        current = self._objects[key].raw
        data, meta = request.data, current.get("metadata", {})
        wanted_rv = (data.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != meta.get("resourceVersion"):
            raise _Conflict()
        has_status = request.resource in self.resources and "status" in self.resources[request.resource].subresources
        if request.subresource == "status":
            for field in list(data):
                if field != "status":
                    data.pop(field)
        elif has_status:
            data.pop("status", None)
        patch_meta = data.setdefault("metadata", {}) or {}
        data["metadata"] = patch_meta
        if "spec" in data and _merge(copy.deepcopy(current), {"spec": data["spec"]}).get("spec") != current.get("spec"):
            patch_meta["generation"] = meta.get("generation", 1) + 1
        patch_meta["resourceVersion"] = str(next(_rv))

    async def _collect_dependents(self, owner_uid: str) -> None:
        async with self._lock:
            doomed = [(key, obj) for key, obj in self._objects.items() if not obj.deleted and any(
                ref.get("uid") == owner_uid for ref in obj.raw.get("metadata", {}).get("ownerReferences", []))]
            for key, obj in doomed:
                raw = obj.raw
                obj.delete()
                await self._buses[key[0]].put({"type": "DELETED", "object": raw})
        for _, obj in doomed:
            uid = obj.last.raw.get("metadata", {}).get("uid")
            if uid:
                await self._collect_dependents(uid)

    async def _serve_list(self, request):
        payload = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            payload["items"] = [o for o in payload["items"]
                                if _selected(o.get("metadata", {}).get("labels") or {}, selector)]
        return payload

    def _serve_log(self, request) -> aiohttp.web.Response:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            return aiohttp.web.json_response({"kind": "Status", "status": "Failure", "reason": "NotFound",
                                              "message": f'pods "{request.name}" not found', "code": 404}, status=404)
        return aiohttp.web.Response(text=self.logs.get((request.namespace, request.name), ""))


def kubeconfig(path, server: str, namespace: str = "default") -> str:
    """Write a kubeconfig (context "emu") for `server` at `path`; its path, for KUBECONFIG or --kubeconfig."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emu",
        "clusters": [{"name": "emu", "cluster": {"server": server}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "me", "namespace": namespace}}]}))
    return str(path)


class Cluster:
    """`with Cluster() as c:` serves the emulator at c.url until the block ends; c.logs[(ns, pod)] = text."""

    def __init__(self):
        self.ready = threading.Event()
        self.url = None
        self.emulator = None
        self.logs: dict[tuple[str, str], str] = {}

    def __enter__(self):
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        return self

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        async with Emulator() as k, kmock.Server(k) as server:
            self.emulator, k.logs, k.calls, k._inflight = k, self.logs, collections.Counter(), set()
            k.faults = collections.Counter()
            every = {"list", "watch", "get", "patch", "create", "delete"}
            k.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
                kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch", "get", "create"})
            k.resources["flopsfit.dev/v1alpha1/scalingsweeps"] = kmock.ResourceInfo(
                kind="ScalingSweep", namespaced=True, verbs=every, subresources={"status"}, shortnames={"sweep"})
            k.resources["batch/v1/jobs"] = kmock.ResourceInfo(kind="Job", namespaced=True, verbs=every,
                                                              subresources={"status"})
            k.resources["v1/pods"] = kmock.ResourceInfo(kind="Pod", namespaced=True, verbs=every,
                                                        subresources={"status", "log"})
            k.resources["v1/services"] = kmock.ResourceInfo(kind="Service", namespaced=True, verbs=every)
            k.resources["v1/secrets"] = kmock.ResourceInfo(kind="Secret", namespaced=True, verbs=every)
            k.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs={"list", "watch", "get"})
            k.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs={"create", "list"})
            self.url = str(server.url).rstrip("/")
            self.ready.set()
            await self.stop.wait()

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
