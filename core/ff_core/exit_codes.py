"""Trainer exit codes: the contract that lets the local executor and Kubernetes tell faults apart."""

DONE = 0          # trained, or the result already existed (skipped)
BAD_CONFIG = 3    # bad sweep, plugin or size: permanent, retrying cannot help
DIVERGED = 4      # NaN/inf loss: permanent, recorded as a `diverged` result
INTERRUPTED = 75   # stopped by SIGTERM after saving a checkpoint: retryable, resumes
NOT_IMPORTABLE = 5  # ff_trainer.count only: a plugin's package is not installed here (the client then skips the check)
# Anything else (crash, OOM kill, SIGKILL) is retryable.
PERMANENT = frozenset({BAD_CONFIG, DIVERGED})
