"""Chaos: the chart's operator command (`kopf run`, its own process) killed with SIGKILL again and again
while a sweep runs against the emulated API server; then an audit of what it left.

A stand-in kubelet completes each Job 0.3-1.2 s after it appears. Every few seconds the operator is killed
and started again. Audited at the end: Jobs created twice (one name, two uids), extra attempts (no Job fails
here, so any attempt > 1 is one), experiments lost (not Succeeded), status rows contradicting their Job,
the most Jobs active at once against the sweep's parallelism, and the longest stall (free slots, pending
experiments, and no new Job). Targets: 0, 0, 0, 0, max active <= parallelism, stall under 5 s (a restart
takes about 2 s of it). Usage: python benchmarks/operator_chaos.py [--experiments 60] [--parallelism 6]
[--kills 8]; tests/test_operator_faults.py runs a short version.
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
from ff_core.crd import LABEL_SWEEP, crd_manifest  # noqa: E402
from k8s_cluster import Cluster, kubeconfig  # noqa: E402

GROUP, VERSION, PLURAL, NS = "flopsfit.dev", "v1alpha1", "scalingsweeps", "default"


class Kubelet(threading.Thread):
    """Completes every Job of the sweep a moment after it appears, and keeps the record the audit needs."""

    def __init__(self, parallelism: int, seed: int):
        super().__init__(daemon=True)
        self.batch, self.rng, self.stop = kubernetes.client.BatchV1Api(), random.Random(seed), threading.Event()
        self.uids: dict[str, set[str]] = {}
        self.due: dict[str, float] = {}
        self.max_active, self.parallelism = 0, parallelism
        self.stall, self.idle_since = 0.0, None
        self.last_new = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self._tick()
            except Exception:  # noqa: BLE001  (the emulator is being read while it changes: try again)
                continue

    def _tick(self) -> None:
        now = time.monotonic()
        jobs = self.batch.list_namespaced_job(NS, label_selector=LABEL_SWEEP).items
        active = [j for j in jobs if not (j.status and j.status.conditions)]
        self.max_active = max(self.max_active, len(active))
        for job in jobs:
            seen = self.uids.setdefault(job.metadata.name, set())
            if job.metadata.uid not in seen:
                seen.add(job.metadata.uid)
                self.last_new = now
        for job in active:
            due = self.due.setdefault(job.metadata.name, now + self.rng.uniform(0.3, 1.2))
            if now >= due:
                self.batch.patch_namespaced_job_status(job.metadata.name, NS, {"status": {"conditions": [
                    {"type": "Complete", "status": "True"}]}})
        self.pending = getattr(self, "pending", True)
        if len(active) < self.parallelism and self.pending:
            self.stall = max(self.stall, now - max(self.last_new, self.idle_since or now))
            self.idle_since = self.idle_since or now
        else:
            self.idle_since = None


def _operator(config: str) -> subprocess.Popen:
    kopf_cli = Path(sys.executable).with_name("kopf")
    return subprocess.Popen([str(kopf_cli), "run", "--standalone", "--module=ff_operator.handlers", "--all-namespaces"],
                            env=dict(os.environ, KUBECONFIG=config), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def chaos(experiments: int = 60, parallelism: int = 6, kills: int = 8, seed: int = 0, timeout: float = 300) -> dict:
    """Run the scenario and return its audit."""
    rng = random.Random(seed)
    body = copy.deepcopy(TINY)
    body["metadata"] = {"name": "chaos", "namespace": NS}
    body["spec"]["budgets"] = [float(b) for b in np.geomspace(6e8, 6e9, max(1, experiments // 3))]
    body["spec"]["execution"] = {"parallelism": parallelism, "retriesPerExperiment": 2}
    with Cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=cluster.url))
        kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(crd_manifest())
        config = kubeconfig(Path(tmp) / "kubeconfig", cluster.url)
        api = kubernetes.client.CustomObjectsApi()
        api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
        kubelet = Kubelet(parallelism, seed)
        kubelet.start()
        operator, began, killed = _operator(config), time.monotonic(), 0
        next_kill = began + rng.uniform(0.8, 2.0)
        status = {}
        while time.monotonic() - began < timeout:
            status = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "chaos").get("status") or {}
            kubelet.pending = status.get("pending", 1) > 0
            if status.get("phase") == "Succeeded":
                break
            if killed < kills and time.monotonic() >= next_kill:
                operator.send_signal(signal.SIGKILL)
                operator.wait()
                operator, killed = _operator(config), killed + 1
                next_kill = time.monotonic() + rng.uniform(0.8, 2.0)
            time.sleep(0.1)
        seconds = time.monotonic() - began
        kubelet.stop.set()
        kubelet.join(5)
        operator.terminate()
        operator.wait(30)
        rows = status.get("experiments", [])
        jobs = {name for name in kubelet.uids}
    return {
        "experiments": len(rows), "parallelism": parallelism, "kills": killed, "seconds": round(seconds, 1),
        "phase": status.get("phase"),
        "jobs created twice": sum(len(uids) > 1 for uids in kubelet.uids.values()),
        "extra attempts": sum(not name.endswith("-a1") for name in jobs),
        "lost experiments": sum(r.get("s") != "Succeeded" for r in rows) + max(0, experiments - len(rows)),
        "rows contradicting Jobs": sum(r.get("s") == "Succeeded" and not any(n.endswith(f"{r['id']}-a{r['a']}")
                                                                            for n in jobs) for r in rows),
        "max active": kubelet.max_active, "longest stall s": round(kubelet.stall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=60)
    parser.add_argument("--parallelism", type=int, default=6)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for key, value in chaos(args.experiments, args.parallelism, args.kills, args.seed).items():
        print(f"{key:26} {value}")


if __name__ == "__main__":
    main()
