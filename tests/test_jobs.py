"""The Job builder against golden manifests (FF_UPDATE_GOLDEN=1 rewrites them after a deliberate change)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep
from ff_operator.jobs import LABEL_ATTEMPT, LABEL_EXPERIMENT, LABEL_SWEEP, build_job, job_name

GOLDEN = Path(__file__).resolve().parent / "golden"
UID = "3f1c9b7e-0000-4000-8000-000000000001"


def render(manifest: dict, attempt: int = 1) -> dict:
    sweep = parse_sweep(manifest)
    return build_job(sweep, plan_sweep(sweep).experiments[0], attempt, UID)


def check_golden(name: str, job: dict) -> None:
    path = GOLDEN / name
    text = json.dumps(job, indent=1, sort_keys=True) + "\n"
    if os.environ.get("FF_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if deliberate, rerun with FF_UPDATE_GOLDEN=1"


def test_default_job_matches_golden(tiny_manifest):
    job = render(tiny_manifest)
    check_golden("job-default.json", job)
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never" and spec["suspend"] is False
    assert pod["automountServiceAccountToken"] is False
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [3, 4]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["command"][-4:] == ["--sweep", "env:FF_SWEEP", "--experiment", job["metadata"]["labels"][LABEL_EXPERIMENT]]
    # the environment carries the very sweep the trainer will plan from
    env = {e["name"]: e["value"] for e in container["env"]}
    assert parse_sweep(json.loads(env["FF_SWEEP"])) == parse_sweep(tiny_manifest)
    assert job["metadata"]["ownerReferences"][0]["uid"] == UID


def test_cluster_settings_and_kueue(tiny_manifest):
    tiny_manifest["metadata"]["namespace"] = "research"
    tiny_manifest["spec"]["execution"] = {
        "queueName": "gpu-queue", "workloadPriorityClass": "high", "priorityClassName": "research-high",
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "s3CredentialsSecret": "s3-creds", "activeDeadlineSeconds": 86400, "gpusPerExperiment": 8}
    job = render(tiny_manifest, attempt=3)
    check_golden("job-kueue.json", job)
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "gpu-queue" and labels["kueue.x-k8s.io/priority-class"] == "high"
    assert job["spec"]["suspend"] is True and labels[LABEL_ATTEMPT] == "3" and labels[LABEL_SWEEP] == "unit"
    assert job["metadata"]["namespace"] == "research" and job["metadata"]["name"].endswith("-a3")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert "--nproc_per_node=8" in container["command"]


@pytest.mark.parametrize("attempt", [1, 99, 999])
def test_job_names_fit_a_dns_label(attempt):
    name = job_name("x" * 40, "e0123456789a", attempt)
    assert len(name) <= 63 and name == name.lower()


def test_the_jobs_command_and_environment_run_the_trainer(tiny_manifest, tmp_path):
    """The contract between the Job builder and the trainer image: its command, with its env, trains."""
    import subprocess
    import sys

    job = render(tiny_manifest)
    container = job["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[0] == "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1", **{e["name"]: e["value"] for e in container["env"]})
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", *command[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    experiment = job["metadata"]["labels"][LABEL_EXPERIMENT]
    assert (tmp_path / "ff-results" / "unit" / experiment / "result.json").is_file()
