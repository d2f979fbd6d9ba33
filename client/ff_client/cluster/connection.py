"""ffctl's connection to a cluster: ScalingSweeps and their pods through the `kubernetes` client.

Every failure a user can fix is a ClusterError that says how: no kubeconfig, an unreachable API server,
the CRD not installed, a permission missing, a sweep that does not exist. The kubernetes package is imported
by the functions that talk to a cluster: importing it takes 0.8 s, which `ffctl run`, `plan` and `analyze`
of a local store never pay.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3.exceptions

from ff_core.crd import (ANNOTATION_PACK, FIELD_MANAGER_CLIENT, GROUP, LABEL_ATTEMPT, LABEL_EXPERIMENT, LABEL_SWEEP,
                         PLURAL, VERSION, parse_pack)
from ff_core.errors import FlopsFitError

if TYPE_CHECKING:
    import kubernetes

CRD_NAME = f"{PLURAL}.{GROUP}"
INSTALL_HINT = "install the chart: helm install flops-fit helm/flops-fit (or kubectl apply -f crds/)"


class ClusterError(FlopsFitError):
    """A cluster operation failed for a reason the user can act on."""


@dataclass(frozen=True)
class Connection:
    api: kubernetes.client.ApiClient
    namespace: str
    server: str


def connect(context: str | None = None, namespace: str | None = None) -> Connection:
    """From the kubeconfig (KUBECONFIG or ~/.kube/config, `context` if given) or, inside a pod, in-cluster config."""
    import kubernetes

    config = kubernetes.client.Configuration()
    try:
        path = os.environ.get("KUBECONFIG")  # read now: the kubernetes package reads it once, at import
        kubernetes.config.load_kube_config(config_file=path, context=context, client_configuration=config)
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=path)
        chosen = next((c for c in contexts if c["name"] == context), active) if context else active
        default_ns = (chosen or {}).get("context", {}).get("namespace", "default")
    except (kubernetes.config.ConfigException, FileNotFoundError, TypeError) as error:
        if context:
            raise ClusterError(f"cannot use kubeconfig context {context!r} ({error}); "
                               "`kubectl config get-contexts` lists the contexts there") from None
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)
            default_ns = _pod_namespace()
        except kubernetes.config.ConfigException:
            raise ClusterError(f"no cluster configured ({error}); point KUBECONFIG at a kubeconfig, pass --context, "
                               "or use `ffctl run` to train on this machine") from None
    return Connection(kubernetes.client.ApiClient(config), namespace or default_ns, config.host)


def _pod_namespace() -> str:
    """Inside a pod, its own namespace (as kubectl does)."""
    try:
        return open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read().strip() or "default"
    except OSError:
        return "default"


def explain(error: Exception, conn: Connection, what: str, name: str | None = None) -> ClusterError:
    """An API failure, as the thing to change."""
    if isinstance(error, urllib3.exceptions.HTTPError):
        return ClusterError(f"cannot reach the API server at {conn.server} while {what}: {error.__class__.__name__}; "
                            "check the cluster is up and your kubeconfig's context (--context)")
    status = getattr(error, "status", None)
    if status == 404:
        if name and _details(error).get("name") == name:
            return ClusterError(f"no sweep {name!r} in namespace {conn.namespace!r}; "
                                "`ffctl status` lists the sweeps there (--namespace picks another)")
        return ClusterError(f"the ScalingSweep CRD is not installed on {conn.server}; {INSTALL_HINT}")
    if status == 403:
        return ClusterError(f"permission denied while {what} in namespace {conn.namespace!r}; ask for a Role that "
                            f"grants this verb on {PLURAL}.{GROUP} (the chart's flops-fit-user ClusterRole does)")
    if status == 401:
        return ClusterError(f"the API server at {conn.server} refused your credentials while {what}; log in again")
    if status == 422:
        return ClusterError(f"the cluster rejected the sweep while {what}: {_message(error)}")
    return ClusterError(f"{what} failed: {status} {_message(error)}")


def _details(error: Exception) -> dict[str, Any]:
    try:
        return json.loads(getattr(error, "body", None) or "{}").get("details") or {}
    except ValueError:
        return {}


def _message(error: Exception) -> str:
    try:
        return json.loads(getattr(error, "body", None) or "{}").get("message") or str(getattr(error, "reason", error))
    except ValueError:
        return str(getattr(error, "reason", error))


def _call(conn: Connection, what: str, fn, *args, name: str | None = None, **kwargs) -> Any:
    import kubernetes

    try:
        return fn(*args, **kwargs)
    except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as error:
        raise explain(error, conn, what, name) from None


def _custom(conn: Connection) -> kubernetes.client.CustomObjectsApi:
    import kubernetes

    return kubernetes.client.CustomObjectsApi(conn.api)


def crd_schema(conn: Connection) -> dict[str, Any] | None:
    """The openAPIV3Schema the cluster enforces, or None when it cannot be read (then ours is used)."""
    import kubernetes

    try:
        crd = kubernetes.client.ApiextensionsV1Api(conn.api).read_custom_resource_definition(CRD_NAME)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise ClusterError(f"the ScalingSweep CRD is not installed on {conn.server}; {INSTALL_HINT}") from None
        return None  # e.g. 403: many users may not read CRDs
    except urllib3.exceptions.HTTPError as error:
        raise explain(error, conn, "reading the CRD") from None
    version = next(v for v in crd.spec.versions if v.name == VERSION)
    return conn.api.sanitize_for_serialization(version.schema.open_apiv3_schema)


def apply_sweep(conn: Connection, manifest: dict[str, Any]) -> str:
    """Create the sweep, or update its spec when it exists (as `kubectl apply` would); 'created' or 'updated'."""
    import kubernetes

    name = manifest["metadata"]["name"]
    body = manifest | {"metadata": manifest["metadata"] | {"namespace": conn.namespace}}
    try:
        _custom(conn).create_namespaced_custom_object(GROUP, VERSION, conn.namespace, PLURAL, body,
                                                      field_manager=FIELD_MANAGER_CLIENT)
        return "created"
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise explain(error, conn, f"creating sweep {name}") from None
    except urllib3.exceptions.HTTPError as error:
        raise explain(error, conn, f"creating sweep {name}") from None
    _call(conn, f"updating sweep {name}", _custom(conn).patch_namespaced_custom_object, GROUP, VERSION,
          conn.namespace, PLURAL, name, {"spec": manifest["spec"]}, field_manager=FIELD_MANAGER_CLIENT)
    return "updated"


def list_sweeps(conn: Connection) -> list[dict[str, Any]]:
    got = _call(conn, "listing sweeps", _custom(conn).list_namespaced_custom_object, GROUP, VERSION, conn.namespace,
                PLURAL)
    return sorted(got.get("items", []), key=lambda s: s["metadata"]["name"])


def get_sweep(conn: Connection, name: str) -> dict[str, Any]:
    return _call(conn, f"reading sweep {name}", _custom(conn).get_namespaced_custom_object, GROUP, VERSION,
                 conn.namespace, PLURAL, name, name=name)


def delete_sweep(conn: Connection, name: str) -> None:
    _call(conn, f"deleting sweep {name}", _custom(conn).delete_namespaced_custom_object, GROUP, VERSION,
          conn.namespace, PLURAL, name, propagation_policy="Background", name=name)


def experiment_logs(conn: Connection, sweep: str, experiment: str, tail: int | None = None) -> tuple[str, str]:
    """(pod name, its log) for the newest pod of the experiment's latest attempt."""
    import kubernetes

    core = kubernetes.client.CoreV1Api(conn.api)
    pods = _call(conn, "listing pods", core.list_namespaced_pod, conn.namespace,
                 label_selector=f"{LABEL_SWEEP}={sweep}").items
    pods = [p for p in pods if (p.metadata.labels or {}).get(LABEL_EXPERIMENT) == experiment  # its own pod, or
            or experiment in dict(parse_pack((p.metadata.annotations or {}).get(ANNOTATION_PACK, "")))]  # its pack's
    if not pods:
        raise ClusterError(f"no pod of experiment {experiment} in sweep {sweep!r} (not started yet, or its Job was "
                           "deleted after finishing: the result and its training curve are in the store; "
                           f"`ffctl status {sweep}` shows each experiment's state)")
    newest = max(pods, key=lambda p: (int((p.metadata.labels or {}).get(LABEL_ATTEMPT, 0)),
                                      str(p.metadata.creation_timestamp or "")))
    kwargs = {"container": "trainer"} | ({"tail_lines": tail} if tail else {})
    text = _call(conn, "reading pod logs", core.read_namespaced_pod_log, newest.metadata.name, conn.namespace, **kwargs)
    return newest.metadata.name, text


def results_uri(sweep: dict, name: str) -> str | None:
    """Where a sweep custom resource's results live: spec.storage.uri / (spec.storage.folder, else its name), as
    ScalingSweep.folder says; None without a storage URI."""
    storage = (sweep.get("spec") or {}).get("storage") or {}
    return f"{storage['uri'].rstrip('/')}/{storage.get('folder') or name}" if storage.get("uri") else None


def sweep_store(conn: Connection, name: str) -> tuple[str, str | None]:
    """The store URI of a sweep on the cluster (its results' folder) and its S3 endpoint, for `ffctl analyze NAME`."""
    sweep = get_sweep(conn, name)
    uri = results_uri(sweep, name)
    if uri is None:
        raise ClusterError(f"sweep {name} names no spec.storage.uri")
    return uri, ((sweep.get("spec") or {}).get("storage") or {}).get("endpointURL")
