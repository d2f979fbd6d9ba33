"""The Job of one experiment attempt, as a pure function of the sweep, the experiment and the attempt; and
the packed Job of several (execution.experimentsPerGPU): one pod, one GPU, one trainer process each.

Retries are the operator's (backoffLimit 0, a new Job per attempt); preemption is the Job controller's
(pod condition DisruptionTarget is ignored, so a preempted pod is replaced without counting as a
failure); the trainer's permanent exit codes (bad config 3, diverged 4) fail the Job at once. A packed Job's
launcher (ff_trainer.pack) exits 0 once every member has ended, and reports each member's exit code in the
pod's termination message.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ff_core import exit_codes
from ff_core.crd import ANNOTATION_PACK, LABEL_ATTEMPT, LABEL_EXPERIMENT, LABEL_SWEEP
from ff_core.launch import PACK, TORCHRUN, TRAINER, trainer_args
from ff_core.spec import API_VERSION, KIND, ScalingSweep
from ff_core.steps import Step

CONTAINER = "trainer"
SWEEP_ENV = "FF_SWEEP"
NODE_RANK_ENV = "FF_NODE_RANK"
RENDEZVOUS_PORT = 29500


def job_name(sweep: str, experiment: str, attempt: int) -> str:
    """<sweep>-<experiment id>-a<attempt>: at most 40 + 1 + 12 + 5 characters, within a DNS label's 63."""
    return f"{sweep}-{experiment}-a{attempt}"


def _pod_security() -> tuple[dict, dict]:
    pod = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
           "seccompProfile": {"type": "RuntimeDefault"}}
    container = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                 "capabilities": {"drop": ["ALL"]}}
    return pod, container


def _torchrun(sweep: ScalingSweep, experiment: Step, name: str) -> list[str]:
    """One node: --standalone. Several: static rendezvous on pod 0 of the Indexed Job, via the headless Service."""
    ex = sweep.spec.execution
    workers = f"--nproc_per_node={ex.processes // ex.nodes_per_experiment}"
    torchrun = ["python", "-m", TORCHRUN]  # torchrun's arguments; the pod exits with the trainer's code
    if ex.nodes_per_experiment == 1:
        launch = [*torchrun, "--standalone", workers]
    else:
        launch = [*torchrun, f"--nnodes={ex.nodes_per_experiment}", workers, f"--node_rank=$({NODE_RANK_ENV})",
                  f"--master_addr={name}-0.{name}", f"--master_port={RENDEZVOUS_PORT}"]
    return launch + ["-m", TRAINER, *trainer_args(f"env:{SWEEP_ENV}", experiment.id)]


def pack_id(members: tuple[tuple[Step, int], ...]) -> str:
    """A pack's id: a hash of its members and their attempts (a recreated pack has the same name)."""
    return "p" + hashlib.sha256(pack_annotation(members).encode()).hexdigest()[:11]


def pack_annotation(members: tuple[tuple[Step, int], ...]) -> str:
    return ",".join(f"{step.id}:{attempt}" for step, attempt in sorted(members, key=lambda m: m[0].id))


def _pack_command(members: tuple[tuple[Step, int], ...]) -> list[str]:
    return ["python", "-m", PACK, "--sweep", f"env:{SWEEP_ENV}", "--steps",
            ",".join(step.id for step, _ in members)]


def _container(sweep: ScalingSweep, command: list[str]) -> dict[str, Any]:
    ex = sweep.spec.execution
    gpus = ex.gpus_per_experiment
    limits = {"cpu": ex.cpu, "memory": ex.memory} | ({"nvidia.com/gpu": str(gpus)} if gpus else {})
    # The sweep travels in the environment, so the pod needs no ConfigMap and no API access.
    env = [{"name": SWEEP_ENV, "value": json.dumps(sweep.to_manifest(), sort_keys=True, separators=(",", ":"))},
           {"name": "HOME", "value": "/tmp"}]
    if ex.nodes_per_experiment > 1:  # the node rank is the pod's completion index
        env.append({"name": NODE_RANK_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}})
    container = {
        "name": CONTAINER,
        "image": ex.image,
        "command": command,
        "env": env,
        "resources": {"requests": dict(limits), "limits": limits},
        "securityContext": _pod_security()[1],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}],
    }
    if sweep.spec.tracking is not None and sweep.spec.tracking.wandb is not None:
        env.append({"name": "WANDB_DIR", "value": "/tmp"})  # W&B's run folder (the image's own is read-only)
    secrets = [s for s in (ex.s3_credentials_secret, ex.tracking_credentials_secret) if s]
    if secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in dict.fromkeys(secrets)]
    return container


def _labels(sweep: ScalingSweep, experiment_id: str, attempt: int) -> dict[str, str]:
    ex = sweep.spec.execution
    labels = {LABEL_SWEEP: sweep.name, LABEL_EXPERIMENT: experiment_id, LABEL_ATTEMPT: str(attempt),
              "app.kubernetes.io/managed-by": "flops-fit"}
    if ex.queue_name:
        labels["kueue.x-k8s.io/queue-name"] = ex.queue_name
    if ex.workload_priority_class:
        labels["kueue.x-k8s.io/priority-class"] = ex.workload_priority_class
    return labels


def build_job(sweep: ScalingSweep, experiment: Step, attempt: int, owner_uid: str) -> dict[str, Any]:
    """The batch/v1 Job manifest for attempt `attempt` (1-based) of a step: an experiment, or a WSD trunk
    segment (the trainer takes either id as --experiment)."""
    name = job_name(sweep.name, experiment.id, attempt)
    return _job(sweep, name, _labels(sweep, experiment.id, attempt), _torchrun(sweep, experiment, name), owner_uid)


def build_pack_job(sweep: ScalingSweep, members: tuple[tuple[Step, int], ...], owner_uid: str) -> dict[str, Any]:
    """The Job of a pack: (step, attempt) members sharing one GPU, one trainer process each in one pod. Its
    attempt label is the highest of its members'; the annotation names each member and its attempt."""
    attempt = max(a for _, a in members)
    pid = pack_id(members)
    name = job_name(sweep.name, pid, attempt)
    return _job(sweep, name, _labels(sweep, pid, attempt), _pack_command(members), owner_uid,
                {ANNOTATION_PACK: pack_annotation(members)})


def _job(sweep: ScalingSweep, name: str, labels: dict[str, str], command: list[str], owner_uid: str,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    ex = sweep.spec.execution
    pod_security, _ = _pod_security()
    pod_spec = {
        "restartPolicy": "Never",
        "serviceAccountName": ex.service_account_name,
        "automountServiceAccountToken": False,
        "securityContext": pod_security,
        "containers": [_container(sweep, command)],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "shm", "emptyDir": {"medium": "Memory"}}],
    }
    pod_spec |= ex.pod_placement  # execution's nodeSelector, tolerations, priorityClassName and its podTemplate's
    spec = {
        "backoffLimit": 0,
        "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                                  "values": sorted(exit_codes.PERMANENT)}},
        ]},
        "ttlSecondsAfterFinished": ex.ttl_seconds_after_finished,
        "suspend": bool(ex.queue_name),  # Kueue admits (unsuspends) queued Jobs
        "template": {"metadata": _pod_metadata(ex, labels, annotations), "spec": pod_spec},
    }
    if ex.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = ex.active_deadline_seconds
    if ex.managed_by:  # MultiKueue: this cluster's Job controller leaves it alone; a worker cluster runs it
        spec["managedBy"] = ex.managed_by
    if ex.nodes_per_experiment > 1:  # pods <name>-<index>.<name>: pod 0 hosts the rendezvous
        spec |= {"completionMode": "Indexed", "completions": ex.nodes_per_experiment,
                 "parallelism": ex.nodes_per_experiment}
        pod_spec["subdomain"] = name
    metadata = {
        "name": name,
        "labels": labels,
        **({"annotations": annotations} if annotations else {}),
        "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND, "name": sweep.name,
                             "uid": owner_uid, "controller": True, "blockOwnerDeletion": True}],
    }
    if sweep.metadata.namespace:
        metadata["namespace"] = sweep.metadata.namespace
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _pod_metadata(ex, labels: dict[str, str], annotations: dict[str, str] | None) -> dict[str, Any]:
    """The pod template's labels and annotations: the podTemplate's, then ours (whose flopsfit.dev/ keys the
    spec keeps it from using)."""
    meta = {"labels": ex.pod_template.metadata.labels | labels}
    if annotations or ex.pod_template.metadata.annotations:
        meta["annotations"] = ex.pod_template.metadata.annotations | (annotations or {})
    return meta


def build_service(job: dict[str, Any], job_uid: str) -> dict[str, Any] | None:
    """The headless Service a multi-node Job's pods find each other by (None for one node); owned by the Job."""
    spec = job["spec"]
    if spec.get("completionMode") != "Indexed":
        return None
    meta = job["metadata"]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace"), "labels": dict(meta["labels"]),
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                          "uid": job_uid, "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                 "selector": {"batch.kubernetes.io/job-name": meta["name"]},
                 "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}]},
    }
