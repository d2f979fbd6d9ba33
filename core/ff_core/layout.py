"""Where things live in a result store, and which S3 endpoint reaches it: one module, imported everywhere.

    <store>/<sweep>/sweep.json                          the resolved sweep of the latest `ffctl run` (the current plan)
    <store>/<sweep>/plans/<plan hash>.json              every plan that trained there
    <store>/<sweep>/<experiment>/checkpoint/latest.pt   the latest checkpoint (written whole, never torn)
    <store>/<sweep>/<experiment>/result.json            written last: "has result.json" means "finished"
    <store>/<sweep>/logs/<experiment>.log               trainer output (local stores)
    <store>/<sweep>/<experiment>/trainer.lock           which ffctl trains it now (local stores)
"""

from __future__ import annotations

import os

SWEEP_FILE = "sweep.json"
RESULT_FILE = "result.json"
LOGS = "logs"
ENDPOINT_ENV = "FF_S3_ENDPOINT_URL"


def sweep_key(sweep: str) -> str:
    return f"{sweep}/{SWEEP_FILE}"


def plan_key(sweep: str, plan_hash: str) -> str:
    return f"{sweep}/plans/{plan_hash}.json"


def result_key(sweep: str, experiment: str) -> str:
    """Where an experiment's record lives in a store."""
    return f"{sweep}/{experiment}/{RESULT_FILE}"


def is_result_key(key: str) -> bool:
    return key == RESULT_FILE or key.endswith("/" + RESULT_FILE)


def checkpoint_key(sweep: str, experiment: str) -> str:
    return f"{sweep}/{experiment}/checkpoint/latest.pt"


def trunk_checkpoint_key(sweep: str, trunk: str, step: int) -> str:
    """A WSD trunk's state at optimizer step `step`: what its next segment and its branches start from."""
    return f"{sweep}/trunks/{trunk}/step-{step}.pt"


def lock_key(sweep: str, experiment: str) -> str:
    return f"{sweep}/{experiment}/trainer.lock"


def log_key(sweep: str, experiment: str) -> str:
    return f"{sweep}/{LOGS}/{experiment}.log"


def s3_endpoint(given: str | None = None, spec: str | None = None) -> str | None:
    """The S3 endpoint, by one precedence everywhere: a value given on the command line (--endpoint-url),
    then $FF_S3_ENDPOINT_URL (this machine's way to the store, e.g. a port-forward), then the sweep's
    spec.storage.endpointURL; None means AWS S3 itself."""
    return given or os.environ.get(ENDPOINT_ENV) or spec
