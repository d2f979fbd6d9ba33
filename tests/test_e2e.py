"""End to end on a real cluster (kind in CI: .github/workflows/e2e.yaml): the chart installed, the images
loaded; ffctl submits a CPU sweep, the operator runs its Jobs, status reaches Succeeded, the results are
analysed from S3 (when FF_E2E_S3_ENDPOINT is set), delete cleans up.

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
# Optional S3 (the workflow runs MinIO on kind's network): its URL from here and from pods, and the Secret
# with its keys in NAMESPACE; AWS_ACCESS_KEY_ID etc. in this environment.
S3 = {"here": os.environ["FF_E2E_S3_ENDPOINT"], "cluster": os.environ["FF_E2E_S3_ENDPOINT_IN_CLUSTER"],
      "secret": os.environ.get("FF_E2E_S3_SECRET", "s3-creds")} if os.environ.get("FF_E2E_S3_ENDPOINT") else None


def ffctl(namespace: str, *args: str):
    result = CliRunner().invoke(main, [*args, "--namespace", namespace], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def settled(namespace: str, name: str, timeout: float = 300, poll: float = 0.5) -> dict:
    """`ffctl status NAME --json` once the sweep's phase is final (or the timeout's last one)."""
    deadline, state = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        state = json.loads(ffctl(namespace, "status", name, "--json").stdout)
        if state["phase"] in ("Succeeded", "Failed", "Stopped", "Invalid"):
            break
        time.sleep(poll)
    return state


def sweep_to_analysis(tmp_path: Path, image: str, namespace: str, s3: dict | None, poll: float = 5.0) -> None:
    """The researcher's path on a cluster: submit, follow, read a log, analyse from S3, delete.

    Also run by tests/test_cluster_flow.py against the emulated cluster with a stand-in kubelet.
    """
    body = copy.deepcopy(TINY) | {"metadata": {"name": "e2e-tiny"}}
    body["spec"]["execution"] = {"image": image, "gpusPerExperiment": 0, "cpu": "1", "memory": "1Gi",
                                 "parallelism": 3, "retriesPerExperiment": 1}
    if s3:  # results to S3 (MinIO beside the cluster), so that they can be analysed from here
        import boto3

        boto3.client("s3", endpoint_url=s3["here"]).create_bucket(Bucket="ff-e2e")
        body["spec"]["storage"] = {"uri": "s3://ff-e2e/sweeps", "endpointURL": s3["cluster"]}
        body["spec"]["execution"]["s3CredentialsSecret"] = s3["secret"]
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(body))
    assert "created" in ffctl(namespace, "submit", str(sweep)).output
    state = settled(namespace, "e2e-tiny", timeout=900, poll=poll)
    assert state["phase"] == "Succeeded", state
    assert state["counts"]["succeeded"] == state["counts"]["total"] == 6
    assert "eval loss" in ffctl(namespace, "logs", "e2e-tiny", state["experiments"][0]["id"]).stdout  # its log
    if s3:
        out = ffctl(namespace, "analyze", "e2e-tiny", "--endpoint-url", s3["here"], "--bootstrap", "0", "--json")
        assert json.loads(out.stdout)["points"] == 6
    ffctl(namespace, "delete", "e2e-tiny")


def test_a_cpu_sweep_runs_to_success_and_is_analysed_and_deleted(tmp_path):
    sweep_to_analysis(tmp_path, os.environ["FF_E2E_TRAINER_IMAGE"], NAMESPACE, S3)
