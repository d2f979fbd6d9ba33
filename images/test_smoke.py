"""`make images-test`: the built images run as a cluster runs them (images/build.sh builds them first).

The operator image, as uid 1000 on a read-only root with every capability dropped, reconciles a sweep on the
emulated API server into Jobs and serves /metrics. The trainer image runs the Job's own command (the one
ff_operator.jobs builds) on a read-only root with a tmpfs /tmp, no capabilities and no network, into a mounted
folder store; a packed pod's command; a SIGTERM (exit 75) and a resume; training.compile; the README's
`docker run` line; and a store uid 1000 cannot write (exit 3 before training). Each of the last five is a defect
that building the images showed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import kubernetes
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from k8s_cluster import Cluster, kubeconfig  # noqa: E402

from ff_core import exit_codes  # noqa: E402
from ff_core.layout import checkpoint_key, result_key  # noqa: E402
from ff_core.plan import plan_sweep  # noqa: E402
from ff_core.spec import parse_sweep  # noqa: E402
from ff_operator.jobs import build_job, build_pack_job  # noqa: E402

OPERATOR = os.environ.get("OPERATOR_IMAGE", "localhost/flops-fit-operator:dev")
TRAINER = os.environ.get("TRAINER_IMAGE", "localhost/flops-fit-trainer:dev")
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "images" / "containers.conf"))
# What the Job's securityContext asks of a pod (ff_operator.jobs._pod_security), as podman flags.
LOCKED_DOWN = ["--user", "1000:1000", "--read-only", "--cap-drop", "all", "--security-opt", "no-new-privileges"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep_body(name: str, **training) -> dict:
    """A sweep small enough to train in seconds on a CPU, its results in the container's /results."""
    return {
        "apiVersion": "flopsfit.dev/v1alpha1", "kind": "ScalingSweep", "metadata": {"name": name},
        "spec": {
            "model": {"plugin": "ff_plugins.gpt:GPT", "args": {"vocab_size": 256}},
            "data": {"plugin": "ff_plugins.text:TextData", "args": {"corpus_bytes": 200000}},
            "budgets": [6.0e8, 4.0e9], "pointsPerBudget": 3, "tokensPerParam": {"min": 0.01, "max": 500},
            "sizes": [{"name": "xs", "knobs": {"d_model": 16, "n_layers": 1, "n_heads": 2}, "nParams": 7920},
                      {"name": "s", "knobs": {"d_model": 24, "n_layers": 1, "n_heads": 2}, "nParams": 14184},
                      {"name": "m", "knobs": {"d_model": 32, "n_layers": 2, "n_heads": 2}, "nParams": 34688}],
            "training": {"globalBatchTokens": 512, "sequenceLength": 32, "learningRate": 3e-3, "evalTokens": 2048,
                         "logPoints": 10, "checkpointEverySteps": 10} | training,
            "storage": {"uri": "file:///results"},
        },
    }


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


def pod_command(job: dict) -> tuple[list[str], dict[str, str]]:
    """The trainer container's command and environment, as the Job gives them to the kubelet."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container["command"], {e["name"]: e["value"] for e in container["env"] if "value" in e}


def run_trainer(store: Path, command: list[str], env: dict[str, str], *flags: str, detach: bool = False,
                mount: str = ":U") -> subprocess.CompletedProcess:
    """The command in the trainer image, locked down as its pod is: /tmp and /dev/shm the only writable places
    besides the store, which is mounted at /results (`:U` gives it to uid 1000, as fsGroup does in a pod)."""
    envs = [a for name, value in env.items() for a in ("-e", f"{name}={value}")]
    return podman("run", *(["-d"] if detach else ["--rm"]), *LOCKED_DOWN, "--tmpfs", "/tmp", "--network", "none",
                  "-v", f"{store}:/results{mount}", *envs, *flags, "--entrypoint", command[0], TRAINER, *command[1:])


@pytest.fixture(scope="module", autouse=True)
def images_present():
    for image in (OPERATOR, TRAINER):
        if podman("image", "exists", image).returncode != 0:
            pytest.fail(f"{image} is not built: run `make images` (make images-test does)")


def test_operator_image_runs_as_1000_read_only_and_reconciles_a_sweep(tmp_path):
    who = podman("run", "--rm", "--entrypoint", "id", OPERATOR, "-u")
    assert who.stdout.strip() == "1000", who
    no_torch = podman("run", "--rm", "--entrypoint", "python", OPERATOR, "-c", "import importlib.util as u; "
                      "print(u.find_spec('torch') is None, u.find_spec('kopf') is not None)")
    assert no_torch.stdout.split() == ["True", "True"], no_torch
    with Cluster() as c:
        config = kubeconfig(tmp_path / "kubeconfig", c.url)
        os.chmod(config, 0o644)
        # The image's own entrypoint and command (kopf run --standalone --module=ff_operator.handlers ...).
        metrics_port = free_port()
        started = podman("run", "-d", *LOCKED_DOWN, "--network", "host", "-v", f"{config}:/kube/config:ro",
                         "-e", "KUBECONFIG=/kube/config", "-e", f"FF_METRICS_PORT={metrics_port}", OPERATOR)
        assert started.returncode == 0, started.stderr
        container = started.stdout.strip()
        try:
            kubernetes.client.Configuration.set_default(kubernetes.client.Configuration(host=c.url))
            body = sweep_body("smoke") | {"metadata": {"name": "smoke", "namespace": "default"}}
            body["spec"]["execution"] = {"parallelism": 2, "image": TRAINER}
            body["spec"]["storage"] = {"uri": "s3://results/sweeps"}  # a cluster's store (a folder is refused)
            kubernetes.client.CustomObjectsApi().create_namespaced_custom_object(
                "flopsfit.dev", "v1alpha1", "default", "scalingsweeps", body)
            batch = kubernetes.client.BatchV1Api()
            deadline = time.monotonic() + 90
            while len(jobs := batch.list_namespaced_job("default").items) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            sweep = kubernetes.client.CustomObjectsApi().get_namespaced_custom_object(
                "flopsfit.dev", "v1alpha1", "default", "scalingsweeps", "smoke")
            assert len(jobs) == 2, (sweep.get("status"), podman("logs", container).stderr[-3000:])
            assert {j.spec.template.spec.containers[0].image for j in jobs} == {TRAINER}
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
                scraped = response.read().decode()
            assert 'flopsfit_jobs_created_total{namespace="default"} 2.0' in scraped, scraped[-2000:]
        finally:
            logs = podman("logs", container)
            podman("rm", "-f", container)
    assert "Traceback" not in logs.stdout + logs.stderr, logs.stderr[-3000:]


def test_the_jobs_command_trains_into_a_mounted_store(tmp_path):
    sweep = parse_sweep(sweep_body("job"))
    experiment = plan_sweep(sweep).experiments[0]
    command, env = pod_command(build_job(sweep, experiment, 1, "uid"))
    assert command[:3] == ["python", "-m", "ff_trainer.torchrun"]
    store = tmp_path / "store"
    store.mkdir()
    done = run_trainer(store, command, env)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((store / result_key(sweep.folder, experiment.id)).read_text())
    assert record["experiment"] == experiment.id and record["final_loss"] > 0


def test_a_packed_pod_trains_each_member(tmp_path):
    sweep = parse_sweep(sweep_body("pack") | {})
    members = tuple((e, 1) for e in plan_sweep(sweep).experiments[:2])
    command, env = pod_command(build_pack_job(sweep, members, "uid"))
    store = tmp_path / "store"
    store.mkdir()
    done = run_trainer(store, command, env)
    assert done.returncode == 0, done.stderr[-3000:]
    for experiment, _ in members:
        assert (store / result_key(sweep.folder, experiment.id)).exists(), done.stderr[-3000:]


def test_sigterm_exits_75_after_a_checkpoint_and_the_rerun_resumes(tmp_path):
    """Defect 2: torchrun used to exit 1 with a traceback, so the pod failure policy never saw 75."""
    sweep = parse_sweep(sweep_body("term"))
    experiment = max(plan_sweep(sweep).experiments, key=lambda e: e.tokens)
    command, env = pod_command(build_job(sweep, experiment, 1, "uid"))
    store = tmp_path / "store"
    store.mkdir()
    started = run_trainer(store, command, env, detach=True)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    checkpoint = store / checkpoint_key(sweep.folder, experiment.id)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert checkpoint.exists(), podman("logs", container).stderr[-3000:]
        podman("kill", "--signal", "TERM", container)
        code = int(podman("wait", container).stdout.strip())
        logs = podman("logs", container)
    finally:
        podman("rm", "-f", container)
    assert code == exit_codes.INTERRUPTED, logs.stderr[-3000:]
    assert "Traceback" not in logs.stderr, logs.stderr[-3000:]
    again = run_trainer(store, command, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(r"resuming at step [1-9]\d*/", again.stderr), again.stderr[-3000:]
    assert (store / result_key(sweep.folder, experiment.id)).exists()


def test_training_compile_trains_in_the_image(tmp_path):
    """Defect 1: the runtime base has no C compiler, so inductor failed (exit 1, spending the retries)."""
    sweep = parse_sweep(sweep_body("compiled", compile=True))
    experiment = min(plan_sweep(sweep).experiments, key=lambda e: e.tokens)
    command, env = pod_command(build_job(sweep, experiment, 1, "uid"))
    store = tmp_path / "store"
    store.mkdir()
    done = run_trainer(store, command, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (store / result_key(sweep.folder, experiment.id)).exists()


def test_the_readmes_docker_run_line_works_with_the_default_entrypoint(tmp_path):
    """Defects 3 and 5: the entrypoint asked for --nproc_per_node=gpu (fails without CUDA), and the README did
    not say that the trainer needs a writable /tmp. This runs the README's own line, with podman."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(docker run [^`]*?)\n#", readme).group(1)
    words = shlex.split(block.replace("\\\n", " "))
    assert words[:2] == ["docker", "run"] and "--tmpfs" in words and "/tmp" in words
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep_body("readme")))
    sweep = parse_sweep(sweep_body("readme"))
    experiment = min(plan_sweep(sweep).experiments, key=lambda e: e.tokens)
    results = tmp_path / "results"
    results.mkdir()
    os.chown(results, 1000, 1000)  # what the README's comment asks of the user (chown -R 1000 results)
    line = []
    for word in words[2:]:
        word = word.replace("$PWD", str(tmp_path))
        line.append(TRAINER if word.startswith("ghcr.io/flops-fit/trainer") else
                    experiment.id if word == "ID" else word)
    done = podman("run", "--network", "none", *line)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (results / result_key(sweep.folder, experiment.id)).exists()


def test_a_store_uid_1000_cannot_write_is_exit_3_before_training(tmp_path):
    """Defect 4: it used to fail at the first checkpoint, minutes into training."""
    sweep = parse_sweep(sweep_body("unwritable"))
    experiment = plan_sweep(sweep).experiments[0]
    command, env = pod_command(build_job(sweep, experiment, 1, "uid"))
    store = tmp_path / "store"
    store.mkdir(mode=0o755)  # root's, as a host folder is before `chown`
    done = run_trainer(store, command, env, mount="")
    assert done.returncode == exit_codes.BAD_CONFIG, done.stderr[-3000:]
    assert "chown -R 1000" in done.stderr and ":U" in done.stderr
    assert "step" not in done.stderr.split("cannot be written")[0].lower()
