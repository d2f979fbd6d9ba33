"""A stand-in for the Job controller and the kubelet of one node, over the emulated API server.

For each new Job of ours it creates the pod(s) the Job controller would (one; single-node Jobs only), runs
the container's command on this machine (`python` as this interpreter, the container's env
plus its envFrom Secrets, cwd a scratch folder), serves the output as the pod's log, and marks the Job
Complete, or Failed (reason PodFailurePolicy for the trainer's permanent exit codes 3 and 4, as the Job's
podFailurePolicy says). `workers` Jobs run at once.

With `warm` (the default) a one-process command (`python -m ff_trainer.torchrun --standalone
--nproc_per_node=1 -m M ...`, or `python -m M ...`) is forked from ffctl's fork server (ff_core.launch)
instead: M runs with the environment torchrun gives its one worker and its exit code is the pod's, as
ff_trainer.torchrun makes it; the trainer's start-up (torch, 4.5 s of CPU, and torchrun's own 2 s) is paid
once per test. The tests about torchrun
itself (test_jobs, test_distributed) and the end-to-end flow (test_cluster_flow) run it for real.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes

from ff_core import launch
from ff_core.crd import LABEL_SWEEP

PERMANENT = {3, 4}
ONE_WORKER = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "0",
              "ROLE_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}  # torchrun's, for 1 process


def one_process(command: list[str]) -> tuple[str, list[str], dict[str, str]] | None:
    """(module, argv, environment torchrun adds) for a command that runs one Python module in one process."""
    if command[:6] == ["python", "-m", launch.TORCHRUN, "--standalone", "--nproc_per_node=1", "-m"]:
        return command[6], command[7:], ONE_WORKER
    if command[:2] == ["python", "-m"]:
        return command[2], command[3:], {}
    return None


class Kubelet:
    """`pods=False` stands in for a MultiKueue worker cluster instead: it admits each queued Job (unsuspends it,
    as Kueue does), runs its command and copies the outcome into the Job's status, and no pod ever appears
    here, as on a manager cluster."""

    def __init__(self, cluster, namespace: str, scratch: Path, workers: int = 2, warm: bool = True,
                 pods: bool = True):
        self.cluster, self.namespace, self.scratch, self.warm, self.pods = cluster, namespace, scratch, warm, pods
        if warm:
            launch.warm_up()
        self.batch, self.core = kubernetes.client.BatchV1Api(), kubernetes.client.CoreV1Api()
        self.pool = ThreadPoolExecutor(workers)
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Kubelet:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while not self.stop.wait(0.3):
            for job in self.batch.list_namespaced_job(self.namespace, label_selector=LABEL_SWEEP).items:
                if not self.pods and job.spec.suspend and job.metadata.name not in self.seen:
                    self.batch.patch_namespaced_job(job.metadata.name, self.namespace, {"spec": {"suspend": False}})
                    continue
                if job.metadata.name not in self.seen and not job.spec.suspend:
                    self.seen.add(job.metadata.name)
                    self.pool.submit(self._run, job)

    def _env(self, container) -> dict[str, str]:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        for source in container.env_from or []:
            secret = self.core.read_namespaced_secret(source.secret_ref.name, self.namespace)
            env |= {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
            env |= dict(secret.string_data or {})
        env |= {e.name: e.value for e in container.env or [] if e.value is not None}
        return env

    def _run(self, job) -> None:
        pod_name = f"{job.metadata.name}-x"
        labels = dict(job.spec.template.metadata.labels) | {"job-name": job.metadata.name}
        annotations = dict(job.spec.template.metadata.annotations or {})
        if self.pods:
            self.core.create_namespaced_pod(self.namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": pod_name, "namespace": self.namespace, "labels": labels, "annotations": annotations},
                "spec": {"containers": [{"name": "trainer", "image": job.spec.template.spec.containers[0].image}]}})
        container = job.spec.template.spec.containers[0]
        workdir = self.scratch / job.metadata.name
        workdir.mkdir(parents=True, exist_ok=True)
        termination = workdir / "termination-log"  # the kubelet's /dev/termination-log
        termination.write_text("")
        env = self._env(container) | {"FF_TERMINATION_LOG": str(termination)}
        code, output = self._execute(container.command, env, workdir)
        if self.pods:
            self.cluster.logs[self.namespace, pod_name] = output
            terminated = {"exitCode": code, "message": termination.read_text()}
            self.core.patch_namespaced_pod_status(pod_name, self.namespace, {"status": {"containerStatuses": [
                {"name": "trainer", "image": container.image, "imageID": "", "ready": False, "restartCount": 0,
                 "state": {"terminated": terminated}}]}})
        if code == 0:
            condition = {"type": "Complete", "status": "True"}
        else:
            reason = "PodFailurePolicy" if code in PERMANENT else "BackoffLimitExceeded"
            condition = {"type": "Failed", "status": "True", "reason": reason}
        self.batch.patch_namespaced_job_status(job.metadata.name, self.namespace, {"status": {"conditions": [condition]}})

    def _execute(self, command: list[str], env: dict[str, str], workdir: Path) -> tuple[int, str]:
        """(exit code, output) of the container's command."""
        warm = one_process(command) if self.warm else None
        if warm is not None:
            module, argv, added = warm
            out, err = workdir / "stdout", workdir / "stderr"
            code = launch.start(module, argv, env | added, out, err, cwd=workdir).wait(timeout=600)
            return code, out.read_text() + err.read_text()
        if command[0] == "python":
            command = [sys.executable, *command[1:]]
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
        return done.returncode, done.stdout + done.stderr
