"""Two operator replicas with kopf peering (the chart's operator.replicas: 2), each the chart's command in a
process of its own against the emulated API server: one reconciles, the other waits paused; SIGKILL the active
one mid-sweep and the standby takes over, with no Job created twice and no experiment lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubernetes
import pytest

from k8s_cluster import Cluster, kubeconfig
from test_operator import GROUP, NS, PLURAL, VERSION, finish, jobs, status, sweep_body, wait_for

PEERING = "ff-flops-fit"  # the chart's: its release name (ff in tests/test_chart.py) and chart name


def chart_args() -> list[str]:
    """The operator's arguments as the chart renders them with operator.replicas: 2."""
    from test_chart import kinds, render

    deployment = kinds(render(["--set", "operator.replicas=2"]), "Deployment")[0]
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def replica(config: str, priority: int, log: Path) -> subprocess.Popen:
    """The chart's command for each replica (kopf run --peering=... --all-namespaces), at a given priority (the
    chart leaves it to each replica to draw one), its liveness endpoint on a port of its own, and a 2 s peering
    lifetime so that a dead one is noticed soon."""
    kopf_cli = Path(sys.executable).with_name("kopf")
    args = [a for a in chart_args() if not a.startswith("--liveness")]
    assert args[0] == "run" and f"--peering={PEERING}" in args and "--standalone" not in args
    env = dict(os.environ, KUBECONFIG=config, FF_PEERING_PRIORITY=str(priority), FF_PEERING_LIFETIME="2")
    return subprocess.Popen([str(kopf_cli), *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def peers() -> dict:
    body = kubernetes.client.CustomObjectsApi().get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings",
                                                                          PEERING)
    return body.get("status") or {}


@pytest.mark.long
def test_the_standby_replica_takes_over_when_the_active_one_is_killed(tmp_path):
    with Cluster() as c:
        config = kubeconfig(tmp_path / "kubeconfig", c.url)
        kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=c.url))
        active = replica(config, 200, tmp_path / "active.log")
        standby = replica(config, 100, tmp_path / "standby.log")
        try:
            wait_for(lambda: sorted(p.get("priority") for p in peers().values()) == [100, 200]
                     if _exists() else False, "both replicas in the peering object", timeout=60)
            kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL,
                                                                                 sweep_body())
            first = wait_for(lambda: len(jobs()) == 2 and jobs(), "two Jobs", timeout=60)
            # the active one reconciles; the standby waits (kopf starts a peer paused, or pauses it on seeing the
            # higher priority: in that moment both may reconcile, which deterministic Job names make harmless)
            assert "Handler 'on_sweep' succeeded" in (tmp_path / "active.log").read_text()
            finish(first[0], "Complete")
            wait_for(lambda: status().get("succeeded") == 1 and len(jobs()) == 3, "a third Job")

            active.send_signal(signal.SIGKILL)  # mid-sweep, with no goodbye to the peering object
            active.wait()
            killed_at = time.monotonic()
            done: set[str] = {first[0].metadata.name}
            took_over = None
            while status().get("phase") != "Succeeded":
                if took_over is None and len(jobs()) > 3:
                    took_over = time.monotonic() - killed_at
                assert time.monotonic() - killed_at < 90, (status(), (tmp_path / "standby.log").read_text()[-3000:])
                for job in jobs():
                    if job.metadata.name not in done:
                        finish(job, "Complete")
                        done.add(job.metadata.name)
                time.sleep(0.3)
            assert "Resuming operations after the pause" in (tmp_path / "standby.log").read_text()
            print(f"the standby created its first Job {took_over:.1f} s after the kill")
        finally:
            for process in (active, standby):
                if process.poll() is None:
                    process.terminate()
                    process.wait(30)
        names = [j.metadata.name for j in jobs()]
        assert len(names) == len(set(names)) == 6 and all(n.endswith("-a1") for n in names)  # one Job each
        assert status()["succeeded"] == 6 and status()["total"] == 6


def _exists() -> bool:
    try:
        peers()
        return True
    except kubernetes.client.ApiException:
        return False
