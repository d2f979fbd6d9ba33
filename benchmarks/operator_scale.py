"""Operator at scale: a 1,000-experiment sweep through the real kopf operator and an emulated API server.

Measures, in one run: seconds until all Jobs exist (parallelism = all), seconds until the status counts
every experiment succeeded after all Jobs complete, API requests by kind per experiment, and the size
of the status object. The emulator (kmock, in memory) stands in for the API server, so latencies are the
operator's own work plus HTTP on loopback, not a real control plane's.
Usage: python benchmarks/operator_scale.py [--experiments 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import sys
import threading
import time
from pathlib import Path

import kopf
import kubernetes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from k8s_cluster import Cluster  # noqa: E402

import ff_operator.handlers  # noqa: E402,F401  (registers the handlers)
from ff_operator.jobs import LABEL_SWEEP  # noqa: E402

GROUP, VERSION, PLURAL, NS = "flopsfit.dev", "v1alpha1", "scalingsweeps", "default"
URL = {}


@kopf.on.login()
def _login(**_):
    return kopf.ConnectionInfo(server=URL["url"], insecure=True)


def sweep(experiments: int) -> dict:
    """`experiments` = budgets x 50 sizes; knobs are opaque to the operator, nParams grow 10% a size."""
    budgets = [1e18 * 1.5**i for i in range(experiments // 50)]
    sizes = [{"name": f"s{k}", "knobs": {"k": k}, "nParams": int(1e6 * 1.1**k)} for k in range(50)]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScalingSweep", "metadata": {"name": "scale", "namespace": NS},
            "spec": {"model": {"plugin": "m:M"}, "data": {"plugin": "d:D"}, "budgets": budgets, "sizes": sizes,
                     "pointsPerBudget": 50, "tokensPerParam": {"min": 1e-9, "max": 1e12},
                     "execution": {"parallelism": experiments}}}


def wait_for(condition, timeout: float = 600.0) -> float:
    began = time.perf_counter()
    while not condition():
        if time.perf_counter() - began > timeout:
            raise TimeoutError
        time.sleep(0.2)
    return time.perf_counter() - began


def main() -> None:
    logging.getLogger("kopf").setLevel(logging.ERROR)  # per-object chatter would drown the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    args = parser.parse_args()
    with Cluster() as cluster:
        URL["url"] = cluster.url
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=cluster.url))
        stop, ready = threading.Event(), threading.Event()
        thread = threading.Thread(target=lambda: asyncio.run(kopf.operator(
            clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready)), daemon=True)
        thread.start()
        ready.wait(30)
        batch, custom = kubernetes.client.BatchV1Api(), kubernetes.client.CustomObjectsApi()
        ours = lambda: [j for j in batch.list_namespaced_job(NS).items if (j.metadata.labels or {}).get(LABEL_SWEEP)]  # noqa: E731
        status = lambda: custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "scale").get("status") or {}  # noqa: E731
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep(args.experiments))
        created_s = wait_for(lambda: len(ours()) >= args.experiments)
        before = len(cluster.emulator._requests)
        for job in ours():
            batch.patch_namespaced_job_status(job.metadata.name, NS, {"status": {"conditions": [
                {"type": "Complete", "status": "True"}]}})
        done_s = wait_for(lambda: status().get("succeeded") == args.experiments)
        kinds = collections.Counter(f"{r.action}".split(".")[-1].lower() for r in cluster.emulator._requests)
        size = len(json.dumps(status()))
        stop.set()
        thread.join(30)
    n = args.experiments
    print(f"{n} experiments, parallelism {n}, kopf + kmock emulator on loopback")
    print(f"all Jobs created:           {created_s:8.1f} s  ({1000 * created_s / n:.1f} ms per experiment)")
    print(f"all successes in status:    {done_s:8.1f} s after the last Job completed (includes {n} PATCHes by the bench)")
    print(f"API requests in all:        {sum(kinds.values())}  ({sum(kinds.values()) / n:.1f} per experiment); "
          f"by kind: {dict(kinds.most_common())}")
    print(f"requests after the Jobs existed: {len(cluster.emulator._requests) - before}")
    print(f"status object:              {size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
