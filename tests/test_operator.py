"""The real kopf operator against an emulated API server over HTTP: sweeps in, Jobs and status out."""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from pathlib import Path

import kopf
import kubernetes
import pytest

import ff_operator.handlers  # noqa: F401  (registers the handlers)
from conftest import TINY
from ff_core.crd import LABEL_SWEEP
from k8s_cluster import Cluster, kubeconfig

GROUP, VERSION, PLURAL, NS = "flopsfit.dev", "v1alpha1", "scalingsweeps", "default"
_server = {}


@kopf.on.login()
def _login(**_):
    return kopf.ConnectionInfo(server=_server["url"], insecure=True)


class Operator:
    """kopf.operator() in a thread with its own event loop; stop() and start() again = a restart."""

    def start(self) -> Operator:
        self.stop_flag, ready = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(kopf.operator(
            clusterwide=True, standalone=True, stop_flag=self.stop_flag, ready_flag=ready)), daemon=True)
        self.thread.start()
        assert ready.wait(20), "kopf did not start"
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(20)


def watching(c: Cluster) -> int:
    """How many watch requests kopf has made: it watches sweeps, Jobs and pods once it is past discovery."""
    return sum(n for (agent, action), n in c.emulator.calls.items() if agent.startswith("kopf") and action == "watch")


@pytest.fixture
def cluster():
    with Cluster() as c:
        _server["url"] = c.url
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=c.url))
        operator = Operator().start()
        # kopf stopped in the middle of its API discovery waits 5 s for the requests in flight: let it finish
        wait_for(lambda: watching(c) >= 3, "kopf watching sweeps, Jobs and pods")
        yield c, operator
        operator.stop()


def wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def sweep_body(name: str = "unit", **execution) -> dict:
    body = copy.deepcopy(TINY)
    body["metadata"] = {"name": name, "namespace": NS}
    body["spec"]["execution"] = {"parallelism": 2, "retriesPerExperiment": 1} | execution
    return body


def jobs(sweep: str = "unit") -> list:
    items = kubernetes.client.BatchV1Api().list_namespaced_job(NS).items
    return sorted((j for j in items if (j.metadata.labels or {}).get(LABEL_SWEEP) == sweep), key=lambda j: j.metadata.name)


def status(name: str = "unit") -> dict:
    obj = kubernetes.client.CustomObjectsApi().get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)
    return obj.get("status") or {}


def finish(job, condition: str, reason: str = "") -> None:
    kubernetes.client.BatchV1Api().patch_namespaced_job_status(job.metadata.name, NS, {"status": {"conditions": [
        {"type": condition, "status": "True", "reason": reason}]}})


def test_sweep_lifecycle_through_kopf(cluster):
    _, operator = cluster
    api = kubernetes.client.CustomObjectsApi()
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep_body())
    first = wait_for(lambda: len(jobs()) == 2 and jobs(), "two Jobs (parallelism 2)")
    wait_for(lambda: status().get("phase") == "Running" and status().get("total") == 6, "status Running, 6 experiments")
    assert [j.metadata.owner_references[0].kind for j in first] == ["ScalingSweep", "ScalingSweep"]

    finish(first[0], "Complete")  # a Job succeeds: its slot goes to the next experiment
    wait_for(lambda: status().get("succeeded") == 1 and len(jobs()) == 3, "one success and a third Job")
    finish(first[1], "Failed", "PodFailurePolicy")  # exit 3/4: permanent, no retry
    wait_for(lambda: status().get("failed") == 1 and len(jobs()) == 4, "one permanent failure, a fourth Job")
    assert not [j for j in jobs() if j.metadata.name.endswith("-a2")]

    operator.stop()  # a restart mid-sweep: state comes back from the Jobs and the status
    names = [j.metadata.name for j in jobs()]
    operator.start()
    time.sleep(2)
    assert [j.metadata.name for j in jobs()] == names  # nothing duplicated, nothing lost
    assert status()["succeeded"] == 1 and status()["failed"] == 1


def test_invalid_sweep_gets_a_condition_and_no_jobs(cluster):
    body = sweep_body("broken")
    del body["spec"]["sizes"][0]["nParams"]
    kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    got = wait_for(lambda: status("broken").get("phase") == "Invalid" and status("broken"), "status Invalid")
    assert "nParams is missing" in got["conditions"][0]["message"]
    assert jobs("broken") == []


def test_jobs_a_queue_suspends_show_as_queued_until_admitted(cluster):
    """Kueue's webhook suspends the Jobs of a namespace that has a LocalQueue (since v0.17 one named `default` is
    enough), with no queueName in the sweep: they hold their slots but run nothing, so the sweep says Queued, not
    Running, and each experiment moves to Running when its Job is admitted (unsuspended)."""
    c, _ = cluster

    def webhook(job: dict) -> None:
        job["spec"]["suspend"] = True
        job["metadata"].setdefault("labels", {})["kueue.x-k8s.io/queue-name"] = "default"

    c.emulator.mutators["jobs"] = webhook
    kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep_body())
    queued = wait_for(lambda: len(jobs()) == 2 and jobs(), "two Jobs, suspended by the webhook")
    wait_for(lambda: status().get("phase") == "Queued" and status().get("queued") == 2, "sweep Queued, 2 queued")
    assert status()["running"] == 0 and sorted(r["s"] for r in status()["experiments"]).count("Queued") == 2
    assert len(jobs()) == 2  # a queued Job holds its slot: parallelism 2, nothing more is created

    batch = kubernetes.client.BatchV1Api()
    batch.patch_namespaced_job(queued[0].metadata.name, NS, {"spec": {"suspend": False}})  # admitted
    batch.patch_namespaced_job_status(queued[0].metadata.name, NS, {"status": {"startTime": "2026-12-03T12:00:00Z"}})
    wait_for(lambda: status().get("phase") == "Running" and status().get("running") == 1
             and status().get("queued") == 1, "one Running, one still Queued")
    assert {r["s"] for r in status()["experiments"] if r["a"]} == {"Running", "Queued"}
    assert status()["preempted"] == 0  # the webhook's suspension of a Job that never ran is no preemption
    # Kueue preempts an admitted Job by suspending it again (its pods go): Queued again, counted as a preemption
    # from the Job alone (a MultiKueue manager has no pods), and no retry spent
    batch.patch_namespaced_job(queued[0].metadata.name, NS, {"spec": {"suspend": True}})
    wait_for(lambda: status().get("queued") == 2 and status().get("phase") == "Queued", "evicted: Queued again")
    assert len(jobs()) == 2 and not [j for j in jobs() if j.metadata.name.endswith("-a2")]
    assert status()["preempted"] == 1 and [r.get("p", 0) for r in status()["experiments"]].count(1) == 1


def test_the_pod_template_reaches_the_jobs_pods(cluster):
    """execution.podTemplate through the real operator: Kueue's topology annotation and a label on the pod template
    of every Job it creates, placement merged."""
    topology = {"kueue.x-k8s.io/podset-required-topology": "cloud.google.com/gce-topology-block"}
    body = sweep_body(podTemplate={"metadata": {"labels": {"team": "llm"}, "annotations": topology},
                                   "spec": {"nodeSelector": {"pool": "h100"}, "priorityClassName": "research"}})
    kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    made = wait_for(lambda: len(jobs()) == 2 and jobs(), "two Jobs")
    for job in made:
        template = job.spec.template
        assert template.metadata.annotations == topology and template.metadata.labels["team"] == "llm"
        assert template.spec.node_selector == {"pool": "h100"} and template.spec.priority_class_name == "research"
    wait_for(lambda: status().get("phase") == "Running", "Running")


@pytest.mark.long
def test_a_multikueue_manager_sweep_completes_from_job_status_alone(cluster, tmp_path):
    """On a MultiKueue manager cluster the Jobs (spec.managedBy) run on a worker cluster: no pod ever appears
    here, Kueue copies their status back. The stand-in worker admits each Job, runs its trainer and writes the
    Job's outcome; the sweep completes from Job status, and the results are in the store."""
    from kubelet import Kubelet

    from ff_core.layout import is_result_key
    from ff_core.store import open_store

    c, _ = cluster
    body = sweep_body(queueName="gpu", managedBy="kueue.x-k8s.io/multikueue")
    body["spec"]["storage"] = {"uri": f"file://{tmp_path / 'store'}"}
    kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    with Kubelet(c, NS, tmp_path / "worker", pods=False) as worker:
        wait_for(lambda: status().get("phase") == "Succeeded", "the sweep Succeeded", timeout=240)
    assert status()["succeeded"] == 6 and len(worker.seen) == 6
    assert {j.spec.managed_by for j in jobs()} == {"kueue.x-k8s.io/multikueue"}
    assert kubernetes.client.CoreV1Api().list_namespaced_pod(NS).items == []  # nothing ran here
    results = [k for k in open_store(f"file://{tmp_path / 'store'}").list("unit/") if is_result_key(k)]
    assert len(results) == 6


def test_every_write_of_the_operator_names_its_field_manager(cluster):
    c, _ = cluster
    kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep_body())
    first = wait_for(lambda: len(jobs()) == 2 and jobs(), "two Jobs")
    finish(first[0], "Complete")
    wait_for(lambda: status().get("succeeded") == 1 and len(jobs()) == 3, "one success and a third Job")
    managers = c.emulator.managers
    assert managers["jobs", "create", "flops-fit-operator"] == 3 and not managers["jobs", "create", None]
    status_writes = sum(n for (plural, action, manager), n in managers.items()
                        if plural == "scalingsweeps" and action == "update" and manager == "flops-fit-operator")
    assert status_writes >= 2


def pod_for(job, name: str) -> dict:
    labels = dict(job.spec.template.metadata.labels) | {"job-name": job.metadata.name}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"containers": [{"name": "trainer", "image": "x"}]}}


def test_preemption_is_counted_and_costs_no_retry(cluster):
    core = kubernetes.client.CoreV1Api()
    kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, sweep_body(retriesPerExperiment=0))
    first = wait_for(lambda: len(jobs()) == 2 and jobs(), "two Jobs")
    core.create_namespaced_pod(NS, pod_for(first[0], "p1"))
    core.patch_namespaced_pod_status("p1", NS, {"status": {"conditions": [
        {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]}})
    wait_for(lambda: status().get("preempted") == 1, "one preemption recorded")
    core.delete_namespaced_pod("p1", NS)  # the scheduler deletes the preempted pod; the count stays
    finish(first[0], "Complete")
    got = wait_for(lambda: status().get("succeeded") == 1 and status(), "the preempted experiment succeeds")
    assert got["preempted"] == 1 and got["failed"] == 0 and len(jobs()) == 3
    row = next(r for r in got["experiments"] if r["s"] == "Succeeded")
    assert row["p"] == 1 and row["a"] == 1  # no retry spent


def services(sweep: str) -> list:
    items = kubernetes.client.CoreV1Api().list_namespaced_service(NS, label_selector=f"{LABEL_SWEEP}={sweep}").items
    return sorted(s.metadata.name for s in items)


def test_multi_node_jobs_get_services_and_deleting_the_sweep_deletes_all(cluster):
    api = kubernetes.client.CustomObjectsApi()
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep_body("gone", nodesPerExperiment=2))
    created = wait_for(lambda: len(jobs("gone")) == 2 and jobs("gone"), "two Jobs")
    assert created[0].spec.completion_mode == "Indexed"
    wait_for(lambda: services("gone") == [j.metadata.name for j in created], "a headless Service per Job")
    api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "gone")
    wait_for(lambda: jobs("gone") == [] and services("gone") == [], "Jobs and Services garbage-collected")


def test_events_on_key_transitions(cluster):
    kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep_body())
    wait_for(lambda: len(jobs()) == 2, "two Jobs")
    reasons = wait_for(lambda: {e.reason for e in kubernetes.client.CoreV1Api().list_namespaced_event(NS).items
                                if e.involved_object.name == "unit"} >= {"JobsCreated", "PhaseRunning"} and True,
                       "JobsCreated and PhaseRunning events")
    assert reasons


def test_suspend_then_resume_and_a_parallelism_change(cluster):
    api = kubernetes.client.CustomObjectsApi()
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep_body(suspend=True))
    wait_for(lambda: status().get("phase") == "Suspended", "phase Suspended")
    assert jobs() == []
    api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "unit", {"spec": {"execution": {"suspend": False}}})
    wait_for(lambda: len(jobs()) == 2 and status().get("observedGeneration") == 2, "Jobs after resume, generation 2")
    api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "unit", {"spec": {"execution": {"parallelism": 3}}})
    wait_for(lambda: len(jobs()) == 3 and status().get("observedGeneration") == 3, "a third Job at parallelism 3")


def test_the_charts_command_runs_the_operator_with_a_liveness_endpoint(tmp_path):
    """`kopf run` as the Deployment runs it (its args read from the rendered chart's defaults), in its own
    process, logging in from a kubeconfig: it reconciles, and /healthz answers the kubelet's probe."""
    import socket
    import subprocess
    import sys
    import urllib.request


    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    deployment = (Path(__file__).resolve().parents[1] / "helm" / "flops-fit" / "templates" / "deployment.yaml").read_text()
    assert "--module=ff_operator.handlers" in deployment and "--liveness=http://0.0.0.0:" in deployment
    with Cluster() as c:
        config = kubeconfig(tmp_path / "kubeconfig", c.url)
        kopf_cli = Path(sys.executable).with_name("kopf")
        metrics_port = free_port()
        proc = subprocess.Popen([str(kopf_cli), "run", "--standalone", "--module=ff_operator.handlers",
                                 f"--liveness=http://127.0.0.1:{port}/healthz", "--all-namespaces"],
                                env=dict(os.environ, KUBECONFIG=config, FF_METRICS_PORT=str(metrics_port)),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=c.url))
            kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep_body())
            wait_for(lambda: len(jobs()) == 2, "Jobs from the operator process", timeout=60)
            health = wait_for(lambda: _get(urllib.request, f"http://127.0.0.1:{port}/healthz"), "/healthz", timeout=30)
            assert health == 200
            # /metrics, scraped mid-sweep and parsed as Prometheus parses the text format
            wait_for(lambda: scrape(metrics_port).get(("flopsfit_sweep_experiments", "Running")) == 2, "2 Running")
            finish(jobs()[0], "Complete")
            wait_for(lambda: scrape(metrics_port).get(("flopsfit_sweep_experiments", "Succeeded")) == 1, "1 done")
            seen = scrape(metrics_port)
            assert seen["flopsfit_jobs_created_total", "default"] == 3
            assert seen["flopsfit_sweep_progress_ratio", "unit"] == pytest.approx(1 / 6)
            # the latency histogram's _count: how many reconciles it observed (a count; no duration is asserted)
            reconciles = seen["flopsfit_reconcile_seconds_count"]
            assert seen["flopsfit_sweep_experiments", "Pending"] == 3 and reconciles >= 2
            assert seen["flopsfit_sweep_preemptions", "unit"] == 0
        finally:
            proc.terminate()
            output = proc.communicate(timeout=30)[0]
        assert proc.returncode in (0, -15), output[-3000:]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict:
    """The operator's /metrics: (name, state) for the per-state gauge, (name, namespace) for the Jobs counter,
    (name, sweep) for the other per-sweep series, name alone for the rest."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            key = labels.get("state") or (labels.get("namespace") if sample.name.startswith("flopsfit_jobs") else
                                          labels.get("sweep"))
            out[(sample.name, key) if key else sample.name] = sample.value
    return out


def _get(urllib_request, url: str) -> int | None:
    try:
        with urllib_request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return None


def test_kubectl_apply_and_delete_drive_the_operator(cluster, tmp_path):
    """The other way in: the real kubectl applies examples/tiny.yaml; the operator plans it into Jobs;
    `kubectl delete sweep` removes them. (--validate=false: the emulated server serves no OpenAPI document.)"""
    import shutil
    import subprocess

    from ff_core.crd import crd_manifest

    c, _ = cluster
    kubectl = shutil.which("kubectl") or pytest.fail("kubectl is not on PATH: run `make tools` (make test does)")
    config = kubeconfig(tmp_path / "kubeconfig", c.url, NS)
    kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(crd_manifest())
    example = Path(__file__).resolve().parents[1] / "examples" / "tiny.yaml"

    def run(*args: str) -> str:
        done = subprocess.run([kubectl, "--kubeconfig", config, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "scalingsweep.flopsfit.dev/tiny created" in run("apply", "--validate=false", "-f", str(example))
    wait_for(lambda: len(jobs("tiny")) == 4, "the example's parallelism (4) of Jobs")
    wait_for(lambda: run("get", "sweep", "tiny", "-o", "jsonpath={.status.total}") == "15", "status total 15")
    run("delete", "sweep", "tiny", "--wait=false")  # (the emulator's watch has no fieldSelector, which --wait uses)
    wait_for(lambda: jobs("tiny") == [], "the sweep's Jobs deleted with it")
