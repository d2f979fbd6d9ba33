"""The Job builder against golden manifests (FF_UPDATE_GOLDEN=1 rewrites them after a deliberate change)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from ff_core.plan import plan_sweep
from ff_core.steps import one_step_each
from ff_core.errors import SpecError
from ff_core.spec import parse_sweep
from ff_core.crd import ANNOTATION_PACK, LABEL_ATTEMPT, LABEL_EXPERIMENT, LABEL_SWEEP
from ff_operator.jobs import build_job, build_pack_job, build_service, job_name

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
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
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
        "s3CredentialsSecret": "s3-creds", "activeDeadlineSeconds": 86400, "gpusPerExperiment": 8,
        "trackingCredentialsSecret": "wandb-key"}
    tiny_manifest["spec"]["tracking"] = {"wandb": {"project": "scaling"}}
    job = render(tiny_manifest, attempt=3)
    check_golden("job-kueue.json", job)
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "gpu-queue" and labels["kueue.x-k8s.io/priority-class"] == "high"
    assert job["spec"]["suspend"] is True and labels[LABEL_ATTEMPT] == "3" and labels[LABEL_SWEEP] == "unit"
    assert job["metadata"]["namespace"] == "research" and job["metadata"]["name"].endswith("-a3")
    container = job["spec"]["template"]["spec"]["containers"][0]
    # the tracking credentials come from their Secret, never the spec; W&B writes its run folder under /tmp
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}, {"secretRef": {"name": "wandb-key"}}]
    assert {"name": "WANDB_DIR", "value": "/tmp"} in container["env"]
    assert "--nproc_per_node=8" in container["command"]


def test_the_pod_template_passes_metadata_and_placement_through(tiny_manifest):
    """execution.podTemplate: its labels and annotations (Kueue's topology annotation, which Kueue reads from
    the pod template) on every trainer pod beside ours, its placement merged with execution's own."""
    topology = {"kueue.x-k8s.io/podset-required-topology": "cloud.google.com/gce-topology-block"}
    tiny_manifest["spec"]["execution"] = {
        "nodesPerExperiment": 2, "nodeSelector": {"pool": "h100"}, "experimentsPerGPU": 1,
        "tolerations": [{"key": "a", "operator": "Exists"}],
        "podTemplate": {"metadata": {"labels": {"team": "llm"}, "annotations": topology},
                        "spec": {"nodeSelector": {"zone": "b"}, "priorityClassName": "research",
                                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                  "effect": "NoSchedule"}]}}}
    job = render(tiny_manifest)
    template = job["spec"]["template"]
    assert template["metadata"]["annotations"] == topology
    assert template["metadata"]["labels"]["team"] == "llm" and LABEL_SWEEP in template["metadata"]["labels"]
    assert "team" not in job["metadata"]["labels"]  # the Job's own labels stay the operator's
    pod = template["spec"]
    assert pod["nodeSelector"] == {"pool": "h100", "zone": "b"} and pod["priorityClassName"] == "research"
    assert pod["tolerations"] == [{"key": "a", "operator": "Exists"},
                                  {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    packed = copy.deepcopy(tiny_manifest)
    packed["spec"]["execution"] |= {"nodesPerExperiment": 1, "experimentsPerGPU": 2}
    sweep = parse_sweep(packed)
    members = tuple((e, 1) for e in plan_sweep(sweep).experiments[:2])
    pack = build_pack_job(sweep, members, UID)["spec"]["template"]["metadata"]["annotations"]
    assert pack["kueue.x-k8s.io/podset-required-topology"] == topology["kueue.x-k8s.io/podset-required-topology"]
    assert ANNOTATION_PACK in pack  # ours beside it


def test_a_multikueue_job_is_managed_by_kueue(tiny_manifest):
    tiny_manifest["spec"]["execution"] = {"queueName": "gpu", "managedBy": "kueue.x-k8s.io/multikueue"}
    job = render(tiny_manifest)
    assert job["spec"]["managedBy"] == "kueue.x-k8s.io/multikueue" and job["spec"]["suspend"] is True
    assert "managedBy" not in render(tiny_manifest | {"spec": tiny_manifest["spec"] | {"execution": {}}})["spec"]


@pytest.mark.parametrize("execution, message", [
    ({"podTemplate": {"metadata": {"labels": {"flopsfit.dev/sweep": "x"}}}}, "prefix is the operator's own"),
    ({"podTemplate": {"metadata": {"annotations": {"bad key!": "x"}}}}, "not a Kubernetes qualified name"),
    ({"podTemplate": {"metadata": {"labels": {"team": "two words"}}}}, "is not a label value"),
    ({"podTemplate": {"spec": {"tolerations": [{"effect": "Sometimes"}]}}}, "NoSchedule"),
    ({"nodeSelector": {"pool": "a"}, "podTemplate": {"spec": {"nodeSelector": {"pool": "b"}}}}, "two values"),
    ({"priorityClassName": "a", "podTemplate": {"spec": {"priorityClassName": "b"}}}, "keep one"),
    ({"managedBy": "kueue.x-k8s.io/multikueue"}, "needs queueName"),
    ({"managedBy": "kueue.x-k8s.io/multikueue", "queueName": "q", "experimentsPerGPU": 2}, "experimentsPerGPU 1"),
    ({"managedBy": "kueue.x-k8s.io/multikueue", "queueName": "q", "nodesPerExperiment": 2}, "nodesPerExperiment 1"),
    ({"managedBy": "someone-else"}, "multikueue"),
])
def test_a_bad_pod_template_or_dispatch_is_refused_saying_what_to_change(tiny_manifest, execution, message):
    tiny_manifest["spec"]["execution"] = execution
    with pytest.raises(SpecError, match="execution") as error:
        parse_sweep(tiny_manifest)
    assert message in str(error.value)


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
    assert command[:3] == ["python", "-m", "ff_trainer.torchrun"]
    env = dict(os.environ, OMP_NUM_THREADS="1", **{e["name"]: e["value"] for e in container["env"]})
    proc = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    experiment = job["metadata"]["labels"][LABEL_EXPERIMENT]
    assert (tmp_path / "ff-results" / "unit" / experiment / "result.json").is_file()


def test_multi_node_is_an_indexed_job_with_a_headless_service(tiny_manifest):
    tiny_manifest["spec"]["execution"] = {"nodesPerExperiment": 2, "gpusPerExperiment": 8}
    job = render(tiny_manifest)
    service = build_service(job, "job-uid")
    check_golden("job-multinode.json", {"job": job, "service": service})
    name, spec = job["metadata"]["name"], job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 2
    assert spec["template"]["spec"]["subdomain"] == name == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None" and service["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    command = spec["template"]["spec"]["containers"][0]["command"]
    assert "--nnodes=2" in command and f"--master_addr={name}-0.{name}" in command
    assert "--node_rank=$(FF_NODE_RANK)" in command and build_service(render({**tiny_manifest}), "u") is not None
    tiny_manifest["spec"]["execution"] = {}
    assert build_service(render(tiny_manifest), "u") is None


def test_the_multi_node_command_trains_across_two_launchers(tiny_manifest, tmp_path):
    """Two torchrun launchers (node ranks 0 and 1) on this machine stand in for two pods of the Indexed Job."""
    import subprocess
    import sys

    tiny_manifest["spec"]["execution"] = {"nodesPerExperiment": 2, "gpusPerExperiment": 1}
    job = render(tiny_manifest)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = dict(os.environ, OMP_NUM_THREADS="1", **{e["name"]: e["value"] for e in container["env"] if "value" in e})
    procs = []
    for rank in (0, 1):
        command = [a.replace("$(FF_NODE_RANK)", str(rank)) for a in container["command"][1:]]  # python -m ...
        command = ["--master_addr=127.0.0.1" if a.startswith("--master_addr=") else a for a in command]
        command = [f"--master_port={29500 + os.getpid() % 1000}" if a.startswith("--master_port=") else a
                   for a in command]
        procs.append(subprocess.Popen([sys.executable, *command], cwd=tmp_path,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    experiment = job["metadata"]["labels"][LABEL_EXPERIMENT]
    assert (tmp_path / "ff-results" / "unit" / experiment / "result.json").is_file()


def test_a_packed_job_runs_its_members_in_one_pod_on_one_gpu(tiny_manifest):
    """experimentsPerGPU 3: one Job, one pod, one GPU, the pack launcher over its members; its name and labels
    carry the pack's id, its annotation each member with its attempt."""
    from ff_core.crd import ANNOTATION_PACK
    from ff_operator.jobs import build_pack_job, pack_id

    tiny_manifest["spec"]["execution"] = {"experimentsPerGPU": 3}
    sweep = parse_sweep(tiny_manifest)
    steps = one_step_each(plan_sweep(sweep))[:3]
    members = ((steps[0], 1), (steps[1], 2), (steps[2], 1))
    job = build_pack_job(sweep, members, UID)
    check_golden("job-pack.json", job)
    pid = pack_id(members)
    assert job["metadata"]["name"] == f"unit-{pid}-a2" and job["metadata"]["labels"][LABEL_EXPERIMENT] == pid
    annotation = job["metadata"]["annotations"][ANNOTATION_PACK]
    assert annotation == job["spec"]["template"]["metadata"]["annotations"][ANNOTATION_PACK]
    assert sorted(annotation.split(",")) == sorted(f"{s.id}:{a}" for s, a in members)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["python", "-m", "ff_trainer.pack"]
    assert container["command"][-1] == ",".join(s.id for s, _ in members)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pack_id(tuple(reversed(members))) == pid  # the same pack, the same name: recreating it is idempotent


@pytest.mark.parametrize("golden", ["job-default.json", "job-kueue.json", "job-multinode.json", "job-pack.json"])
def test_built_manifests_are_valid_kubernetes_objects(golden):
    """Every Job (and Service) the builder makes, checked strictly against Kubernetes' own schemas."""
    import kubernetes_validate

    data = json.loads((GOLDEN / golden).read_text())
    for manifest in ([data["job"], data["service"]] if "job" in data else [data]):
        for version in ("1.30.0", "1.34.0"):
            kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("exit_code", [3, 4])
def test_the_jobs_launcher_exits_with_the_trainers_code(tmp_path, exit_code):
    """torchrun says 1 for any failed worker; the Job's launcher (ff_trainer.torchrun) says the worker's code, so
    the podFailurePolicy's FailJob on 3 and 4 (permanent) matches on a single-node Job too."""
    import subprocess
    import sys

    (tmp_path / "failing.py").write_text(f"import sys\nsys.exit({exit_code})\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "ff_trainer.torchrun", "--standalone", "--nproc_per_node=1", "-m",
                           "failing"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == exit_code, done.stderr[-2000:]


def test_the_jobs_launcher_stopped_by_sigterm_exits_75(tmp_path):
    """A preempted pod: SIGTERM to the launcher reaches the worker (which checkpoints: here it only says so) and
    the pod exits 75, retryable, not torchrun's 1 with a traceback."""
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "waiting.py").write_text(
        "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: (print('checkpointed', flush=True), "
        "sys.exit(75)))\nopen('ready', 'w').close()\ntime.sleep(120)\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "ff_trainer.torchrun", "--standalone", "--nproc_per_node=1", "-m",
                             "waiting"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 75 and "checkpointed" in output and "Traceback" not in output, output[-2000:]
