"""An emulated Kubernetes API server (kmock's KubernetesEmulator) over real HTTP, in a thread of its own.

Gaps closed here so that kopf and the `kubernetes` client behave as against a real API server: created
objects get a uid, generation, creationTimestamp and resourceVersion; discovery serves the resources the
operator uses, v1/namespaces included (kopf waits for it before it starts any watch).
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import threading
import uuid

import kmock

_rv = itertools.count(1)


class Emulator(kmock.KubernetesEmulator):
    """KubernetesEmulator plus the metadata a real API server assigns on create."""

    async def _handle(self, request):
        if request.resource is not None and request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("generation", 1)
            meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            meta["resourceVersion"] = str(next(_rv))
        return await super()._handle(request)


class Cluster:
    """`with Cluster() as c:` serves the emulator at c.url until the block ends."""

    def __init__(self):
        self.ready = threading.Event()
        self.url = None
        self.emulator = None

    def __enter__(self):
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        return self

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        async with Emulator() as k, kmock.Server(k) as server:
            self.emulator = k
            k.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
                kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch", "get"})
            k.resources["flopsfit.dev/v1alpha1/scalingsweeps"] = kmock.ResourceInfo(
                kind="ScalingSweep", namespaced=True, verbs={"list", "watch", "get", "patch", "create", "delete"},
                subresources={"status"})
            k.resources["batch/v1/jobs"] = kmock.ResourceInfo(
                kind="Job", namespaced=True, verbs={"list", "watch", "get", "patch", "create", "delete"})
            k.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs={"list", "watch", "get"})
            k.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs={"create"})
            self.url = str(server.url).rstrip("/")
            self.ready.set()
            await self.stop.wait()

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
