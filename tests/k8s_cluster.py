"""An emulated Kubernetes API server (kmock's KubernetesEmulator) over real HTTP, in a thread of its own.

kmock 0.8 stores objects and merges patches; the gaps that matter to our operator and ffctl are closed
here so that kopf and the `kubernetes` client see what a real API server would do:
- on create: a uid, generation 1, creationTimestamp and resourceVersion;
- on every write: a new resourceVersion; a patch carrying a stale metadata.resourceVersion is a 409;
- a JSON patch whose `test` operation fails is a 422 (kopf's finalizer patches rely on it);
- the status subresource: a patch to .../status changes only status, a patch to the object never does;
- generation bumps when (and only when) a patch changes spec;
- watches as the API server serves them: a LIST answers the current resourceVersion; a watch from a
  resourceVersion replays only the later events, with their real types, or answers 410 Gone when that
  version is older than the kept window; a watch without one sends a snapshot (ADDED) after subscribing,
  so nothing written in between is lost;
- garbage collection is asynchronous, like the background cascade of a real cluster: a collector pass
  every `gc_delay` seconds deletes every object whose owners (ownerReferences by uid) are all gone,
  dependents created after their owner went away included;
- fault injection: `faults[(action, plural)] = n` answers the next n such requests 500, unapplied;
  `chaos = Chaos(rate, modes, seed)` answers that fraction of writes 500 before applying, 500 after
  applying, or (updates) 409 Conflict; `Cluster.outage(seconds)` answers every request 503 for a while
  and cuts the open watches, as an API server restart does;
- `labelSelector` on lists (equality and existence terms);
- discovery for the resources used (v1/namespaces included: kopf waits for it before any watch; kopf.dev's
  peering objects for operators that run as several replicas);
- pod logs (`pods/<name>/log`) served from `Cluster.logs`, standing in for the kubelet;
- mutating admission: `mutators[plural](body)` changes each created object before it is stored (Kueue's webhook
  suspending the Jobs of a namespace with a LocalQueue, say);
- the field manager of every create and patch, counted in `managers[(plural, action, fieldManager)]`;
- 404s worded as the API server words them (a missing object names itself; an unknown resource does not);
- history trimmed to the last version, and the request log to a recent window (kmock keeps both whole,
  and matches every request against the whole log: quadratic time on a 1,000-Job sweep).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import datetime
import itertools
import random
import threading
import time
import uuid

import aiohttp.web
import kmock
import yaml
from kmock._internal.aiobus import Bus

_rv = itertools.count(1)
_latest_rv = [0]
WATCH_WINDOW = 20_000  # events kept per resource for watches that resume from a resourceVersion
_CUT = {"type": "_CUT"}  # ends the open watches (an outage); never sent to a client


def _next_rv() -> str:
    _latest_rv[0] = next(_rv)
    return str(_latest_rv[0])


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


class _KeptBus(Bus):
    """An event bus that keeps the last WATCH_WINDOW events it carried, by resourceVersion.

    A DELETED event gets a resourceVersion of its own (the API server's deletion is a write too)."""

    def __init__(self):
        super().__init__()
        self.kept: collections.deque = collections.deque(maxlen=WATCH_WINDOW)
        self.floor = 0  # a watch from a resourceVersion below this one missed events: 410 Gone

    async def put(self, *events) -> None:
        stamped = []
        for event in events:
            if event.get("type") == "DELETED" or not event["object"].get("metadata", {}).get("resourceVersion"):
                obj = copy.deepcopy(event["object"])
                obj.setdefault("metadata", {})["resourceVersion"] = _next_rv()
                event = {"type": event["type"], "object": obj}
            if len(self.kept) == self.kept.maxlen:
                self.floor = self.kept[0][0]
            self.kept.append((int(event["object"]["metadata"]["resourceVersion"]), event))
            stamped.append(event)
        await super().put(*stamped)


@dataclasses.dataclass
class Chaos:
    """Random faults on writes: `rate` of creates, patches and deletes answer with one of `modes`:
    "before" (500, not applied), "after" (applied, then 500), "conflict" (409 on a patch, not applied)."""

    rate: float = 0.0
    modes: tuple[str, ...] = ("before", "after", "conflict")
    seed: int = 0
    injected: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def draw(self, action: str) -> str | None:
        if action not in ("create", "update", "delete") or self.rng.random() >= self.rate:
            return None
        modes = [m for m in self.modes if m != "conflict" or action == "update"]
        mode = self.rng.choice(modes) if modes else None
        if mode:
            self.injected[mode] += 1
        return mode


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
    chaos: Chaos
    outage_until: float = 0.0  # time.monotonic() until which every request answers 503
    mutators: dict  # resource plural -> a function changing each created object of it (mutating admission)
    managers: collections.Counter  # (plural, "create" | "update", fieldManager or None) -> writes
    gc_delay: float = 0.05  # seconds between passes of the garbage collector

    async def _handle(self, request):
        # kmock matches each request against its whole request log (O(requests) each, quadratic in all):
        # the log keeps only the requests in flight (they must be in it), and `calls` counts the rest.
        action = str(request.action).split(".")[-1].lower()
        self.calls[request.headers.get("User-Agent", ""), action] += 1
        if time.monotonic() < self.outage_until:
            return _status(503, "ServiceUnavailable", "injected outage: the API server is restarting")
        self._inflight.add(id(request))
        self._requests[:] = [r for r in self._requests if id(r) in self._inflight]
        fault = (action, getattr(request.resource, "plural", None))
        mode = "before" if self.faults[fault] > 0 else (self.chaos.draw(action) if request.name or action == "create"
                                                         else None)
        if self.faults[fault] > 0:
            self.faults[fault] -= 1
        if mode in ("before", "conflict"):
            self._inflight.discard(id(request))
            if mode == "conflict":
                return _status(409, "Conflict", "injected conflict: the object has been modified")
            return _status(500, "InternalError", "injected fault")
        try:
            response = await self._handle_emulated(request)
        finally:
            self._inflight.discard(id(request))
        return _status(500, "InternalError", "injected fault (after applying)") if mode == "after" else response

    async def _handle_emulated(self, request):
        key = (request.resource, request.namespace, request.name)
        if request.resource is not None and request.subresource == "log" and request.action == kmock.action.FETCH:
            return self._serve_log(request)
        if request.resource is not None and isinstance(request.data, dict):
            if request.action in (kmock.action.CREATE, kmock.action.UPDATE):
                plural = getattr(request.resource, "plural", None)
                self.managers[plural, str(request.action).split(".")[-1].lower(),
                              request.params.get("fieldManager")] += 1
            if request.action == kmock.action.CREATE:
                if mutate := self.mutators.get(getattr(request.resource, "plural", None)):
                    mutate(request.data)
                meta = request.data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                if request.namespace:
                    meta.setdefault("namespace", request.namespace)
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("generation", 1)
                meta.setdefault("creationTimestamp", _now())
                meta["resourceVersion"] = _next_rv()
            elif request.action == kmock.action.UPDATE and request.name is not None:
                try:
                    self._prepare_patch(request, key)
                except _Conflict:
                    return _status(409, "Conflict", f'the object has been modified; apply your changes to the '
                                                    f'latest version ("{request.name}": stale resourceVersion)')
        live = key in self._objects and not self._objects[key].deleted
        if request.action == kmock.action.UPDATE and isinstance(request.data, list) and live:
            failed = _failed_test(self._objects[key].raw, request.data)
            if failed:
                return _status(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                               f"test operation on {failed} failed")
            request.data.append({"op": "replace", "path": "/metadata/resourceVersion", "value": _next_rv()})
        if request.action == kmock.action.DELETE and request.name is not None and live:
            await self._mark_deleted(key)
        writes = request.action in (kmock.action.DELETE, kmock.action.UPDATE) and request.name is not None
        try:
            response = await super()._handle(request)
        except kmock.KubernetesNotFoundError as error:
            return self._not_found(request, error)
        if writes and key in self._objects and not self._objects[key].deleted:
            self._objects[key].history = [self._objects[key].last.raw]
        return response

    async def _mark_deleted(self, key) -> None:
        """A delete of an object that finalizers hold sets its deletionTimestamp, as a write of its own (a new
        resourceVersion and a MODIFIED event); kmock's delete then sees it marked and does nothing more."""
        async with self._lock:
            meta = self._objects[key].raw.get("metadata", {})
            if meta.get("finalizers") and not meta.get("deletionTimestamp"):
                self._objects[key].patch({"metadata": {"deletionTimestamp": _now(), "resourceVersion": _next_rv()}})
                await self._buses[key[0]].put({"type": "MODIFIED", "object": self._objects[key].raw})

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
        patch_meta["resourceVersion"] = _next_rv()

    async def collect_garbage(self) -> int:
        """One pass of the garbage collector: delete every object all of whose owners are gone (an object that
        finalizers hold is marked for deletion instead), until none is left; how many it deleted or marked."""
        count = 0
        async with self._lock:
            while True:
                live = {obj.raw.get("metadata", {}).get("uid") for obj in self._objects.values() if not obj.deleted}
                doomed = [(key, obj) for key, obj in self._objects.items() if not obj.deleted and _orphaned(obj.raw, live)]
                if not doomed:
                    return count
                for key, obj in doomed:
                    raw = obj.raw
                    if raw["metadata"].get("finalizers"):
                        obj.patch({"metadata": {"deletionTimestamp": _now(), "resourceVersion": _next_rv(),
                                                "ownerReferences": None}})
                        await self._buses[key[0]].put({"type": "MODIFIED", "object": obj.raw})
                    else:
                        obj.delete()
                        await self._buses[key[0]].put({"type": "DELETED", "object": raw})
                    count += 1

    async def _serve_list(self, request):
        payload = await super()._serve_list(request)
        payload["metadata"]["resourceVersion"] = str(_latest_rv[0])
        selector = request.params.get("labelSelector")
        if selector:
            payload["items"] = [o for o in payload["items"]
                                if _selected(o.get("metadata", {}).get("labels") or {}, selector)]
        return payload

    async def _serve_watch(self, request):
        """Subscribe first, then replay (a snapshot, or the events after the given resourceVersion), then
        stream; an outage ends the stream (the client re-watches from the last version it saw)."""
        yield b""
        bus, since = self._buses[request.resource], request.params.get("resourceVersion") or "0"
        expired = since != "0" and (not since.isdigit() or int(since) < bus.floor)
        if expired:
            yield {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                               "reason": "Expired", "message": f"too old resource version: {since}"}}
            return
        async with self._lock:
            mark = await bus.mark()
            if since == "0":
                replay = [{"type": "ADDED", "object": obj.raw}
                          for obj in self._KubernetesEmulator__get_objs(request, strict=False) if not obj.deleted]
            else:
                replay = [event for rv, event in bus.kept if rv > int(since)]
        for event in replay:
            if self._watched(request, event):
                yield event
        async for event in bus.stream(since=mark):
            if event is _CUT:
                return
            if self._watched(request, event):
                yield event

    def _watched(self, request, event) -> bool:
        meta = event.get("object", {}).get("metadata", {})
        selector = request.params.get("labelSelector")
        return (self._KubernetesEmulator__check(request, request.resource, meta.get("namespace"), meta.get("name"),
                                                strict=False)
                and (not selector or _selected(meta.get("labels") or {}, selector)))

    async def cut_watches(self) -> None:
        for bus in list(self._buses.values()):
            await Bus.put(bus, _CUT)

    def _serve_log(self, request) -> aiohttp.web.Response:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            return aiohttp.web.json_response({"kind": "Status", "status": "Failure", "reason": "NotFound",
                                              "message": f'pods "{request.name}" not found', "code": 404}, status=404)
        return aiohttp.web.Response(text=self.logs.get((request.namespace, request.name), ""))


def _orphaned(raw: dict, live: set) -> bool:
    owners = [ref.get("uid") for ref in raw.get("metadata", {}).get("ownerReferences") or []]
    return bool(owners) and not any(uid in live for uid in owners)


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
            k.faults, k.chaos = collections.Counter(), Chaos()
            k.mutators, k.managers = {}, collections.Counter()
            k._buses = collections.defaultdict(_KeptBus)
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
            for plural, kind, namespaced in (("clusterkopfpeerings", "ClusterKopfPeering", False),
                                             ("kopfpeerings", "KopfPeering", True)):  # kopf's peering objects
                k.resources[f"kopf.dev/v1/{plural}"] = kmock.ResourceInfo(kind=kind, namespaced=namespaced,
                                                                          verbs=every)
            k.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs={"create", "list"})
            self.url = str(server.url).rstrip("/")
            self.ready.set()
            collector = asyncio.create_task(self._collect(k))
            await self.stop.wait()
            collector.cancel()

    async def _collect(self, k: Emulator) -> None:
        while True:
            await asyncio.sleep(k.gc_delay)
            await k.collect_garbage()

    def outage(self, seconds: float) -> None:
        """Every request answers 503 for `seconds`, and the open watches end now (an API server restart)."""
        self.emulator.outage_until = time.monotonic() + seconds
        asyncio.run_coroutine_threadsafe(self.emulator.cut_watches(), self.loop).result(5)

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
