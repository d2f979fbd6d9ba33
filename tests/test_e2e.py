"""End to end on a real cluster (kind in CI: .github/workflows/e2e.yaml): the chart installed, the images
loaded; ffctl submits a CPU sweep, the operator runs its Jobs, status reaches Succeeded, delete cleans up.

Skipped unless KUBECONFIG names a kubeconfig file (never the one in ~/.kube by accident), and
FF_E2E_TRAINER_IMAGE names the trainer image the cluster can pull.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import TINY
from ff_client.cli import main

KUBECONFIG = os.environ.get("KUBECONFIG", "")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not (KUBECONFIG and Path(KUBECONFIG).is_file() and os.environ.get("FF_E2E_TRAINER_IMAGE")),
    reason="e2e: set KUBECONFIG to a cluster with the chart installed and FF_E2E_TRAINER_IMAGE")]
NAMESPACE = os.environ.get("FF_E2E_NAMESPACE", "default")


def ffctl(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--namespace", NAMESPACE], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_cpu_sweep_runs_to_success_and_is_deleted(tmp_path):
    body = copy.deepcopy(TINY) | {"metadata": {"name": "e2e-tiny"}}
    body["spec"]["execution"] = {"image": os.environ["FF_E2E_TRAINER_IMAGE"], "gpusPerExperiment": 0, "cpu": "1",
                                 "memory": "1Gi", "parallelism": 3, "retriesPerExperiment": 1}
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(body))
    assert "created" in ffctl("submit", str(sweep))
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        state = json.loads(ffctl("status", "e2e-tiny", "--json"))
        if state["phase"] in ("Succeeded", "Failed", "Stopped", "Invalid"):
            break
        time.sleep(5)
    assert state["phase"] == "Succeeded", state
    assert state["counts"]["succeeded"] == state["counts"]["total"] == 6
    ffctl("logs", "e2e-tiny", state["experiments"][0]["id"])  # the pod is there until the Job's TTL
    ffctl("delete", "e2e-tiny")
