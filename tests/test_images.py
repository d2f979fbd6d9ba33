"""The two Dockerfiles, checked without a Docker engine: pinned bases, non-root users, the right extras,
and entry points that match what the Job builder and the chart call."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import TINY
from ff_core.plan import plan_sweep
from ff_core.spec import parse_sweep
from ff_operator.jobs import build_job

REPO = Path(__file__).resolve().parents[1]


def instructions(name: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (REPO / name).read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def values(name: str, keyword: str) -> list[str]:
    return [arg for kw, arg in instructions(name) if kw == keyword]


@pytest.mark.parametrize("name", ["Dockerfile.operator", "Dockerfile.trainer"])
def test_base_pinned_user_non_root_and_sources_copied(name):
    (base,) = values(name, "FROM")
    assert re.search(r":\d+\.\d+\.\d+[\w.-]*$|@sha256:[0-9a-f]{64}$", base), f"{base}: pin an exact version"
    assert values(name, "USER")[-1] == "1000:1000"  # the uid the Job's and the chart's securityContext run as
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    copied = {arg.split()[0] for arg in values(name, "COPY")}
    assert {path.split("/")[0] for path in packages.values()} <= copied  # setuptools needs every package folder


def test_operator_image_has_no_torch_and_runs_the_charts_command():
    (install,) = [a for a in values("Dockerfile.operator", "RUN") if "pip install" in a]
    assert '".[operator]"' in install and "torch" not in install and "trainer" not in install
    assert yaml.safe_load(values("Dockerfile.operator", "ENTRYPOINT")[0]) == ["kopf"]
    chart = (REPO / "helm" / "flops-fit" / "templates" / "deployment.yaml").read_text()
    assert "- run" in chart and "--module=ff_operator.handlers" in chart and "--standalone" in chart


def test_trainer_image_installs_the_trainer_and_matches_the_jobs_command():
    (install,) = [a for a in values("Dockerfile.trainer", "RUN") if "pip install" in a]
    assert values("Dockerfile.trainer", "ARG") == ['TRACKING=""']
    # the build arg as the image's shell expands it: no tracking package by default, the extras asked for else
    extras = re.search(r'"\.\[[^"]*\]"', install).group(0)
    for tracking, expected in (("", ".[trainer,plugins]"), ("mlflow,wandb", ".[trainer,plugins,mlflow,wandb]")):
        expanded = subprocess.run(["bash", "-c", f"echo {extras}"], env={"TRACKING": tracking}, capture_output=True,
                                  text=True).stdout.strip()
        assert expanded == expected
    extras_defined = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"mlflow", "wandb", "tensorboard"} <= set(extras_defined)
    sweep = parse_sweep(TINY)
    command = build_job(sweep, plan_sweep(sweep).experiments[0], 1, "uid")["spec"]["template"]["spec"][
        "containers"][0]["command"]
    entrypoint = yaml.safe_load(values("Dockerfile.trainer", "ENTRYPOINT")[0])
    # python is on PATH in the PyTorch base image; torchrun's arguments, through ff_trainer.torchrun
    assert command[:3] == entrypoint[:3] == ["python", "-m", "ff_trainer.torchrun"]
    assert command.count("ff_trainer") == 1 and command[command.index("ff_trainer") - 1] == "-m"
    assert entrypoint[-2:] == ["-m", "ff_trainer"] and "--nproc_per_node=auto" in entrypoint  # gpu fails on a CPU host


def test_dockerignore_keeps_local_state_out():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".tools", ".git", "ff-results"} <= set(ignored)


def test_the_workflows_build_both_images_install_the_chart_on_kind_and_run_e2e():
    e2e = yaml.safe_load((REPO / ".github" / "workflows" / "e2e.yaml").read_text())
    script = "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in e2e["jobs"]["kind"]["steps"])
    for needed in ("-f Dockerfile.operator", "-f Dockerfile.trainer", "helm/kind-action", "kind load docker-image",
                   "helm install flops-fit helm/flops-fit", "-m e2e tests/test_e2e.py"):
        assert needed in script, needed
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yaml").read_text())
    assert any(step.get("run") == "make test" for step in ci["jobs"]["test"]["steps"])
