"""Operator at scale: a 1,000-experiment sweep through the real kopf operator and an emulated API server.

The emulated API server (kmock, in memory, real HTTP on loopback) runs in a child process; this process
runs the operator (kopf + our handlers) and the bench's own client, whose requests carry a User-Agent of
their own so that the operator's API calls are counted apart. Reported, in one run:
- time until every Job exists (parallelism = all experiments) and until the status records every success
  after all Jobs completed (the bench marks 1,000 Jobs Complete as fast as it can: a burst);
- the operator's API writes (create/patch/delete) and reads per experiment lifecycle;
- time per reconcile (read the sweep, plan, reconcile, write its status) after a Job event: median, p95;
- the status object's size, and the operator process's peak RSS growth over its start.
Usage: python benchmarks/operator_scale.py [--experiments 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import kopf
import kubernetes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import ff_operator.handlers as handlers  # noqa: E402  (registers the handlers)
from ff_operator.jobs import job_name  # noqa: E402

GROUP, VERSION, PLURAL, NS = "flopsfit.dev", "v1alpha1", "scalingsweeps", "default"
BENCH_AGENT = "ff-bench"
URL: dict[str, str] = {}
TIMES: list[float] = []
SINGLES = 20  # Jobs completed one at a time at the end, for the event -> status latency


@kopf.on.login()
def _login(**_):
    return kopf.ConnectionInfo(server=URL["url"], insecure=True)


def serve(conn) -> None:
    """Child process: the emulated API server; on request, counts of the operator's calls by action."""
    from k8s_cluster import Cluster

    with Cluster() as cluster:
        conn.send(cluster.url)
        conn.recv()
        counts: dict[str, int] = {}
        for (agent, action), count in cluster.emulator.calls.items():
            if agent != BENCH_AGENT and action != "none":
                counts[action] = counts.get(action, 0) + count
        conn.send(counts)


def sweep(experiments: int) -> dict:
    """`experiments` = budgets x 50 sizes; knobs are opaque to the operator, nParams grow 10% a size."""
    budgets = [1e18 * 1.5**i for i in range(experiments // 50)]
    sizes = [{"name": f"s{k}", "knobs": {"k": k}, "nParams": int(1e6 * 1.1**k)} for k in range(50)]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScalingSweep", "metadata": {"name": "scale", "namespace": NS},
            "spec": {"model": {"plugin": "m:M"}, "data": {"plugin": "d:D"}, "budgets": budgets, "sizes": sizes,
                     "pointsPerBudget": 50, "tokensPerParam": {"min": 1e-9, "max": 1e12},
                     "execution": {"parallelism": experiments}}}


def timed_sync(original):
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES.append(time.perf_counter() - began)
    return wrapper


def wait_for(condition, timeout: float = 900.0, poll: float = 0.5) -> float:
    began = time.perf_counter()
    while not condition():
        if time.perf_counter() - began > timeout:
            raise TimeoutError
        time.sleep(poll)
    return time.perf_counter() - began


def run(n: int, url: str) -> dict:
    URL["url"] = url
    config = kubernetes.client.Configuration(host=url)
    kubernetes.client.Configuration.set_default(config)
    client = kubernetes.client.ApiClient(config)
    client.user_agent = BENCH_AGENT
    batch, custom = kubernetes.client.BatchV1Api(client), kubernetes.client.CustomObjectsApi(client)
    status = lambda: custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "scale").get("status") or {}  # noqa: E731
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(kopf.operator(
        clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready)), daemon=True)
    thread.start()
    ready.wait(30)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, sweep(n))
    created_s = wait_for(lambda: status().get("running") == n)
    TIMES.clear()  # from here on, every reconcile follows a Job event
    names = [job_name("scale", row["id"], row["a"]) for row in status()["experiments"]]
    complete = lambda name: batch.patch_namespaced_job_status(name, NS, {"status": {"conditions": [  # noqa: E731
        {"type": "Complete", "status": "True"}]}})
    began = time.perf_counter()
    for name in names[:-SINGLES]:  # a burst: most Jobs finish at once
        complete(name)
    patched_s = time.perf_counter() - began
    done_s = wait_for(lambda: status().get("succeeded") == n - SINGLES)
    burst_syncs, latencies = list(TIMES), []
    TIMES.clear()
    for k, name in enumerate(names[-SINGLES:], start=n - SINGLES + 1):  # then one at a time: event -> status
        began = time.perf_counter()
        complete(name)
        wait_for(lambda: status().get("succeeded") == k, poll=0.002)  # noqa: B023  (waited for at once)
        latencies.append(time.perf_counter() - began)
    final = status()
    time.sleep(1.0)  # let trailing events drain before the counts
    stop.set()
    thread.join(30)
    return {"created_s": created_s, "patched_s": patched_s, "done_s": done_s, "burst_syncs": burst_syncs,
            "syncs": list(TIMES), "latencies": latencies,
            "status_kib": len(json.dumps(final)) / 1024,
            "rss_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024}


def ms(values: list[float], q: float) -> str:
    values = sorted(values) or [0.0]
    value = statistics.median(values) if q == 0.5 else values[min(len(values) - 1, int(q * len(values)))]
    return f"{1000 * value:.1f}"


def main() -> None:
    logging.getLogger("kopf").setLevel(logging.ERROR)  # per-object chatter would drown the figures
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    n = parser.parse_args().experiments
    handlers.reconcile_sweep = timed_sync(handlers.reconcile_sweep)
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(child,), daemon=True)
    server.start()
    got = run(n, parent.recv())
    parent.send("report")
    calls = parent.recv()
    server.join(10)
    writes = sum(v for k, v in calls.items() if k in ("create", "update", "delete"))
    print(f"{n} experiments, parallelism {n}; kopf operator in this process, emulated API server in another")
    print(f"all Jobs created:        {got['created_s']:7.1f} s ({1000 * got['created_s'] / n:.1f} ms per experiment)")
    print(f"burst: the bench marked {n - SINGLES} Jobs Complete in {got['patched_s']:.1f} s; all in status "
          f"{got['done_s']:.1f} s after that, in {len(got['burst_syncs'])} coalesced reconciles "
          f"(median {ms(got['burst_syncs'], 0.5)} ms each while the burst loads the machine)")
    print(f"then {SINGLES} Jobs one at a time: reconcile median {ms(got['syncs'], 0.5)} ms, "
          f"p95 {ms(got['syncs'], 0.95)} ms (target <= 100 ms); Job patch -> status shows it: "
          f"median {ms(got['latencies'], 0.5)} ms")
    print(f"operator API writes:     {writes} = {writes / n:.2f} per experiment lifecycle (target <= 4)")
    print(f"operator API calls:      {dict(sorted(calls.items()))}")
    print(f"status object:           {got['status_kib']:.1f} KiB (target < 256 KiB)")
    print(f"operator process RSS growth (peak): {got['rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
