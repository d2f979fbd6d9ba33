"""The e2e scenario (tests/test_e2e.py) on this machine: the emulated API server, the real operator, a
stand-in kubelet that runs each Job's trainer command here, and S3 from moto. ffctl submits, follows,
reads a log, analyses the results from S3 and deletes, exactly as on kind."""

from __future__ import annotations

import kubernetes
import pytest

from ff_core.crd import crd_manifest
from ff_core.store import open_store
from k8s_cluster import kubeconfig
from kubelet import Kubelet
from test_e2e import sweep_to_analysis
from test_operator import NS, cluster, jobs, wait_for  # noqa: F401  (fixture)


@pytest.mark.long
def test_submit_to_analysis_through_the_operator_and_a_local_kubelet(cluster, s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    c, _ = cluster
    kubernetes.client.ApiextensionsV1Api().create_custom_resource_definition(crd_manifest())
    kubernetes.client.CoreV1Api().create_namespaced_secret(NS, {"metadata": {"name": "s3-creds"}, "stringData": {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}})
    monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "kubeconfig", c.url))
    s3 = {"here": s3_endpoint, "cluster": s3_endpoint, "secret": "s3-creds"}
    with Kubelet(c, NS, tmp_path / "node", warm=False) as kubelet:  # torchrun for real: the flow as deployed
        sweep_to_analysis(tmp_path, "flops-fit/trainer:local", NS, s3, poll=0.5)
    wait_for(lambda: jobs("e2e-tiny") == [], "the sweep's Jobs deleted with it")
    assert len(kubelet.seen) == 6 and all(name.endswith("-a1") for name in kubelet.seen)  # one Job each, no retry
    results = [k for k in open_store("s3://ff-e2e/sweeps", s3_endpoint).list("e2e-tiny/") if k.endswith("result.json")]
    assert len(results) == 6  # every trainer wrote its record to S3, and deleting the sweep kept them
