"""The emulated API server behaves like a real one where the operator depends on it (issue 18): watches that
resume from a resourceVersion, asynchronous garbage collection, and the fault modes chaos runs inject."""

from __future__ import annotations

import json
import time

import kubernetes
import pytest
import requests

import k8s_cluster
from k8s_cluster import Chaos, Cluster

NS = "default"


@pytest.fixture
def api():
    with Cluster() as c:
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=c.url))
        yield c, kubernetes.client.CoreV1Api()


def service(name: str, owner_uid: str | None = None, finalizers: list[str] | None = None) -> dict:
    meta = {"name": name, "namespace": NS}
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": "owner", "uid": owner_uid}]
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"clusterIP": "None"}}


def watch(url: str, since: str | None = None):
    """A watch of Services as kopf makes it (`watch=true`, the list's resourceVersion): its events, parsed."""
    params = {"watch": "true"} | ({"resourceVersion": since} if since is not None else {})
    response = requests.get(f"{url}/api/v1/namespaces/{NS}/services", params=params, stream=True, timeout=5)
    return (json.loads(line) for line in response.iter_lines() if line)


def events(url: str, count: int, since: str | None = None) -> list[tuple[str, str]]:
    """The first `count` events of a watch, as (type, name)."""
    stream, seen = watch(url, since), []
    while len(seen) < count:
        event = next(stream)
        seen.append((event["type"], event["object"].get("metadata", {}).get("name") or event["object"].get("code")))
    return seen


def names(core) -> set[str]:
    return {s.metadata.name for s in core.list_namespaced_service(NS).items}


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_watch_from_a_resource_version_replays_only_later_events_with_their_types(api):
    c, core = api
    core.create_namespaced_service(NS, service("a"))
    listed = core.list_namespaced_service(NS)
    since = listed.metadata.resource_version
    assert since.isdigit() and int(since) >= int(listed.items[0].metadata.resource_version)
    core.patch_namespaced_service("a", NS, {"metadata": {"labels": {"x": "1"}}})
    core.create_namespaced_service(NS, service("b"))
    core.delete_namespaced_service("a", NS)
    assert events(c.url, 3, since) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    # the deletion is a write of its own: it has a later resourceVersion than any write before it
    last = core.list_namespaced_service(NS).metadata.resource_version
    core.create_namespaced_service(NS, service("c"))
    assert events(c.url, 1, last) == [("ADDED", "c")]


def test_a_watch_without_a_resource_version_sends_a_snapshot_then_the_changes(api):
    c, core = api
    core.create_namespaced_service(NS, service("a"))
    core.delete_namespaced_service("a", NS)
    core.create_namespaced_service(NS, service("b"))
    stream = watch(c.url)
    first = next(stream)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "b")  # the deleted "a" is not replayed
    core.create_namespaced_service(NS, service("c"))
    second = next(stream)
    assert (second["type"], second["object"]["metadata"]["name"]) == ("ADDED", "c")


def test_a_watch_from_a_version_older_than_the_window_is_gone(monkeypatch):
    monkeypatch.setattr(k8s_cluster, "WATCH_WINDOW", 3)
    with Cluster() as c:
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=c.url))
        core = kubernetes.client.CoreV1Api()
        core.create_namespaced_service(NS, service("a"))
        since = core.list_namespaced_service(NS).metadata.resource_version
        for label in range(5):
            core.patch_namespaced_service("a", NS, {"metadata": {"labels": {"n": str(label)}}})
        assert events(c.url, 1, since) == [("ERROR", 410)]  # kopf then lists again and watches from there


def test_garbage_collection_is_asynchronous_and_takes_dependents_created_after_their_owner(api):
    c, core = api
    c.emulator.gc_delay = 1.0
    owner = core.create_namespaced_service(NS, service("owner")).metadata.uid
    core.create_namespaced_service(NS, service("child", owner))
    core.delete_namespaced_service("owner", NS)
    assert names(core) == {"child"}  # not yet: a real collector works in the background
    core.create_namespaced_service(NS, service("late", owner))  # its owner is already gone
    core.create_namespaced_service(NS, service("held", owner, finalizers=["example.com/hold"]))
    assert wait_for(lambda: names(core) == {"held"}, timeout=5)
    held = core.read_namespaced_service("held", NS)
    assert held.metadata.deletion_timestamp is not None  # a finalizer holds it: marked, not removed


def test_fault_modes_answer_as_a_failing_api_server_would(api):
    c, core = api
    c.emulator.chaos = Chaos(rate=1.0, modes=("after",))
    with pytest.raises(kubernetes.client.ApiException) as after:
        core.create_namespaced_service(NS, service("a"))
    assert after.value.status == 500 and names(core) == {"a"}  # applied, then failed: a retry meets 409
    c.emulator.chaos = Chaos(rate=1.0, modes=("conflict",))
    core.create_namespaced_service(NS, service("b"))  # no conflict mode for creates: it succeeds
    with pytest.raises(kubernetes.client.ApiException) as conflict:
        core.patch_namespaced_service("b", NS, {"metadata": {"labels": {"x": "1"}}})
    assert conflict.value.status == 409 and not core.read_namespaced_service("b", NS).metadata.labels
    c.emulator.chaos = Chaos(rate=1.0, modes=("before",))
    with pytest.raises(kubernetes.client.ApiException) as before:
        core.delete_namespaced_service("b", NS)
    assert before.value.status == 500 and names(core) == {"a", "b"}
    c.emulator.chaos = Chaos()


def test_an_outage_refuses_requests_and_ends_open_watches(api):
    c, core = api
    core.create_namespaced_service(NS, service("a"))
    stream = watch(c.url)
    assert next(stream)["object"]["metadata"]["name"] == "a"
    c.outage(0.5)
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.list_namespaced_service(NS)
    assert refused.value.status == 503
    assert list(stream) == []  # the stream ended (a client re-watches from its last resourceVersion)
    time.sleep(0.6)
    assert names(core) == {"a"}
