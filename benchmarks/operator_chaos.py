"""Chaos: the chart's operator command (`kopf run`, its own process) against the emulated API server while a
sweep runs, under one of several faults; then an audit of what it left.

A stand-in kubelet completes each Job 0.3-1.2 s after it appears (and, per scenario, deletes finished Jobs
after a TTL or preempts pods). Scenarios:
  crash       the operator is SIGKILLed and started again every 0.8-2 s
  api-faults  crash, plus 20% of all writes fail: 500 before applying, 500 after applying, 409 on patches
  outages     the API server refuses everything (503) for 1 s every 2-3 s and cuts the open watches
  recreated   the sweep is deleted and created again under the same name twice mid-run, with a garbage
              collector 2 s late (the old sweep's Jobs linger), plus crashes
  ttl         crash, plus a TTL controller deleting each finished Job 3 s after it finished (longer than a
              restart takes: what the spec's 600 s floor on ttlSecondsAfterFinished guarantees on a cluster)
  ttl-below-restart  the same with a 0.3 s TTL, shorter than a restart: the case the floor refuses, shown
              to say why (a Job that finished and vanished while the operator was down runs again)
  preemptions crash, plus 30% of running pods preempted (condition DisruptionTarget, then replaced)
  two-replicas  two replicas with kopf peering (the chart's operator.replicas: 2, a 2 s peering lifetime): the
              active one (the higher priority) is SIGKILLed every 0.8-2 s and a new replica of a random priority
              started, so the standby takes over, or the newcomer takes over from it
  wsd         crash, with a WSD sweep: trunk segments and cooldown branches, each a Job that must wait for
              the segment it starts from (audited: steps started before their prerequisite completed)
Audited: Jobs created twice (one name, two uids, same owner), extra attempts (no Job fails here, so any
attempt > 1 is one), experiments lost (not Succeeded), status rows contradicting their Job (Succeeded with
no completed Job of that attempt owned by the sweep), Jobs the final sweep counted that an earlier sweep
owned, the most Jobs active at once against the sweep's parallelism, the longest stall (free slots,
pending experiments, no new Job), and preemptions injected against status.preempted (a lower bound).
Targets: 0 for each count, max active <= parallelism, stall under 5 s (a restart takes about 2 s of it).
Usage: python benchmarks/operator_chaos.py [--scenario all|crash|...] [--experiments 60] [--parallelism 6]
[--kills 8]; tests/test_operator_faults.py runs short versions.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import kubernetes
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import TINY  # noqa: E402
from ff_core.crd import LABEL_EXPERIMENT, LABEL_SWEEP, crd_manifest  # noqa: E402
from ff_core.plan import plan_sweep  # noqa: E402
from ff_core.spec import parse_sweep  # noqa: E402
from ff_core.steps import plan_steps  # noqa: E402
from ff_operator.jobs import job_name  # noqa: E402
from k8s_cluster import Chaos, Cluster, kubeconfig  # noqa: E402

GROUP, VERSION, PLURAL, NS, NAME = "flopsfit.dev", "v1alpha1", "scalingsweeps", "default", "chaos"
SCENARIOS = ("crash", "api-faults", "outages", "recreated", "ttl", "ttl-below-restart", "preemptions", "wsd",
             "two-replicas")


class Kubelet(threading.Thread):
    """Completes every Job of the sweep a moment after it appears, and keeps the record the audit needs."""

    def __init__(self, parallelism: int, seed: int, ttl: float | None = None, preempt: float = 0.0):
        super().__init__(daemon=True)
        self.batch, self.core = kubernetes.client.BatchV1Api(), kubernetes.client.CoreV1Api()
        self.rng, self.stop = random.Random(seed), threading.Event()
        self.ttl, self.preempt = ttl, preempt
        self.jobs: dict[str, dict[str, str]] = {}  # Job name -> {uid: owner uid}
        self.completed: set[str] = set()  # uids
        self.first_seen: dict[str, float] = {}  # step id -> when its first Job appeared
        self.completed_at: dict[str, float] = {}  # step id -> when a Job of it completed
        self.due: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.preempted = 0
        self.max_active, self.parallelism = 0, parallelism
        self.stall, self.idle_since, self.pending = 0.0, None, True
        self.last_new = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self._tick()
            except Exception:  # noqa: BLE001  (the API may be refusing or changing under us: try again)
                continue

    def _tick(self) -> None:
        now = time.monotonic()
        jobs = self.batch.list_namespaced_job(NS, label_selector=LABEL_SWEEP).items
        active = [j for j in jobs if not (j.status and j.status.conditions)]
        self.max_active = max(self.max_active, len(active))
        for job in jobs:
            seen = self.jobs.setdefault(job.metadata.name, {})
            if job.metadata.uid not in seen:
                seen[job.metadata.uid] = (job.metadata.owner_references or [None])[0].uid
                self.first_seen.setdefault(job.metadata.labels[LABEL_EXPERIMENT], now)
                self.last_new = now
                if self.preempt and self.rng.random() < self.preempt:
                    self._preempt(job)
        for job in active:
            due = self.due.setdefault(job.metadata.uid, now + self.rng.uniform(0.3, 1.2))
            if now >= due:  # recorded first: a write failing after it applied still completed the Job
                self.completed.add(job.metadata.uid)
                self.finished_at.setdefault(job.metadata.uid, now)
                self.completed_at.setdefault(job.metadata.labels[LABEL_EXPERIMENT], now)
                self.batch.patch_namespaced_job_status(job.metadata.name, NS, {"status": {"conditions": [
                    {"type": "Complete", "status": "True"}]}})
        if self.ttl is not None:
            for job in jobs:
                finished = self.finished_at.get(job.metadata.uid)
                if finished is not None and now - finished >= self.ttl:
                    self.batch.delete_namespaced_job(job.metadata.name, NS, propagation_policy="Background")
        if len(active) < self.parallelism and self.pending:
            self.stall = max(self.stall, now - max(self.last_new, self.idle_since or now))
            self.idle_since = self.idle_since or now
        else:
            self.idle_since = None

    def _preempt(self, job) -> None:
        """A pod of the Job is preempted: it gets DisruptionTarget, then goes; the Job controller replaces it."""
        labels = dict(job.spec.template.metadata.labels)
        pod = {"metadata": {"name": f"{job.metadata.name}-p{self.rng.randrange(10**6)}", "labels": labels},
               "spec": {"containers": [{"name": "trainer", "image": "x"}]}}
        name = self.core.create_namespaced_pod(NS, pod).metadata.name
        self.core.patch_namespaced_pod_status(name, NS, {"status": {"conditions": [
            {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]}})
        self.preempted += 1
        time.sleep(0.1)  # the eviction takes a moment; the operator records it from the pod event
        self.core.delete_namespaced_pod(name, NS)


def _operator(config: str, priority: int | None = None) -> subprocess.Popen:
    """The chart's command: --standalone, or with a priority one of several replicas with kopf peering."""
    kopf_cli = Path(sys.executable).with_name("kopf")
    mode = ["--standalone"] if priority is None else ["--peering=chaos"]
    env = dict(os.environ, KUBECONFIG=config)
    if priority is not None:
        env |= {"FF_PEERING_PRIORITY": str(priority), "FF_PEERING_LIFETIME": "2"}
    process = subprocess.Popen([str(kopf_cli), "run", *mode, "--module=ff_operator.handlers", "--all-namespaces"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.priority = priority  # type: ignore[attr-defined]
    return process


def _sweep(experiments: int, parallelism: int, wsd: bool = False) -> dict:
    body = copy.deepcopy(TINY)
    body["metadata"] = {"name": NAME, "namespace": NS}
    body["spec"]["budgets"] = [float(b) for b in np.geomspace(6e8, 6e9, max(1, experiments // 3))]
    body["spec"]["execution"] = {"parallelism": parallelism, "retriesPerExperiment": 2}
    if wsd:
        body["spec"]["training"] |= {"schedule": "wsd", "warmupTokens": 1024}
    return body


def chaos(experiments: int = 60, parallelism: int = 6, kills: int = 8, seed: int = 0, timeout: float = 300,
          scenario: str = "crash") -> dict:
    """Run one scenario and return its audit."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
    rng = random.Random(seed)
    kills = 0 if scenario == "outages" else kills
    recreations = 2 if scenario == "recreated" else 0
    ttl = {"ttl": 3.0, "ttl-below-restart": 0.3}.get(scenario)
    with Cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=cluster.url))
        kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(crd_manifest())
        config = kubeconfig(Path(tmp) / "kubeconfig", cluster.url)
        api = kubernetes.client.CustomObjectsApi()
        body = _sweep(experiments, parallelism, wsd=scenario == "wsd")
        uid = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)["metadata"]["uid"]
        if scenario == "recreated":
            cluster.emulator.gc_delay = 2.0
        kubelet = Kubelet(parallelism, seed, ttl, 0.3 if scenario == "preemptions" else 0.0)
        kubelet.start()
        replicas = scenario == "two-replicas"
        standby = _operator(config, rng.randint(1, 10**6)) if replicas else None
        operator = _operator(config, rng.randint(1, 10**6)) if replicas else _operator(config)
        began, killed, outages, recreated = time.monotonic(), 0, 0, 0
        if scenario == "api-faults":
            cluster.emulator.chaos = Chaos(rate=0.2, seed=seed)
        next_kill = began + rng.uniform(0.8, 2.0)
        next_outage = began + rng.uniform(1.0, 2.0) if scenario == "outages" else float("inf")
        next_recreate = began + rng.uniform(1.5, 2.5) if recreations else float("inf")
        status = {}
        while time.monotonic() - began < timeout:
            try:
                status = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME).get("status") or {}
            except kubernetes.client.ApiException:
                time.sleep(0.1)  # an outage, or between a deletion and the re-creation
                continue
            kubelet.pending = status.get("pending", 1) > 0
            now = time.monotonic()
            if status.get("phase") == "Succeeded" and recreated >= recreations:
                break
            if killed < kills and now >= next_kill and replicas:  # the active one: the higher priority
                active, standby = sorted((operator, standby), key=lambda p: p.priority, reverse=True)
                active.send_signal(signal.SIGKILL)
                active.wait()
                operator, killed = _operator(config, rng.randint(1, 10**6)), killed + 1
                next_kill = time.monotonic() + rng.uniform(0.8, 2.0)
            elif killed < kills and now >= next_kill:
                operator.send_signal(signal.SIGKILL)
                operator.wait()
                operator, killed = _operator(config), killed + 1
                next_kill = time.monotonic() + rng.uniform(0.8, 2.0)
            if now >= next_outage and status.get("phase") != "Succeeded":
                cluster.outage(1.0)
                outages, next_outage = outages + 1, now + 1.0 + rng.uniform(2.0, 3.0)
            if recreated < recreations and now >= next_recreate:
                api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
                _wait_gone(api)  # as `kubectl delete` does: a finalizer may hold the sweep a moment
                uid = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)["metadata"]["uid"]
                recreated, next_recreate, status = recreated + 1, now + rng.uniform(2.0, 3.0), {}
            time.sleep(0.1)
        seconds = time.monotonic() - began
        injected = sum(cluster.emulator.chaos.injected.values())
        cluster.emulator.chaos = Chaos()
        kubelet.stop.set()
        kubelet.join(5)
        for process in (operator, standby):
            if process is not None:
                process.terminate()
                process.wait(30)
    rows = status.get("experiments", [])
    parsed = parse_sweep(body)
    waits = {s.id: s.after for s in plan_steps(parsed, plan_sweep(parsed))}
    early = sum(any(kubelet.completed_at.get(a, float("inf")) > seen for a in waits.get(step, ()))
                for step, seen in kubelet.first_seen.items())
    ours = {name: [u for u, owner in uids.items() if owner == uid] for name, uids in kubelet.jobs.items()}
    return {
        "scenario": scenario, "steps": len(rows), "parallelism": parallelism, "kills": killed,
        "outages": outages, "recreations": recreated, "seconds": round(seconds, 1), "phase": status.get("phase"),
        "jobs created twice": sum(len(uids) > 1 for uids in ours.values()),
        "extra attempts": sum(not name.endswith("-a1") for name, uids in ours.items() if uids),
        "lost experiments": sum(r.get("s") != "Succeeded" for r in rows) + max(0, len(waits) - len(rows)),
        "steps started early": early,
        "rows contradicting Jobs": sum(r.get("s") == "Succeeded" and not any(
            u in kubelet.completed for u in ours.get(job_name(NAME, r["id"], r["a"]), [])) for r in rows),
        "max active": kubelet.max_active, "longest stall s": round(kubelet.stall, 1),
        "preemptions injected": kubelet.preempted, "preempted in status": status.get("preempted", 0),
        "faults injected": injected,
    }


def _wait_gone(api, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the deleted sweep {NAME} was still there after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="all", choices=("all", *SCENARIOS))
    parser.add_argument("--experiments", type=int, default=60)
    parser.add_argument("--parallelism", type=int, default=6)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    audits = [chaos(args.experiments, args.parallelism, args.kills, args.seed, scenario=s)
              for s in (SCENARIOS if args.scenario == "all" else (args.scenario,))]
    keys = list(audits[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for audit in audits:
        print("| " + " | ".join(str(audit[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
