"""`python -m ff_trainer.torchrun ARGS`: torchrun (same arguments), exiting as the trainer did.

torchrun ends with exit 1 whenever a worker fails (a ChildFailedError), whatever the worker's code, and with
exit 1 and a traceback when it is stopped by SIGTERM. A Job's podFailurePolicy could then never see the
trainer's permanent codes (3: bad configuration or plugin, 4: diverged), and spent the Job's retries on
them; a preempted pod did not exit with the documented 75. This runs torchrun's own launcher and exits with
the code of the first worker that failed (128 + N for one killed by signal N, as a shell says it), and with
75 (ff_core.exit_codes.INTERRUPTED: the workers were told to checkpoint) when SIGTERM or SIGINT stopped it.
"""

from __future__ import annotations

import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

from ff_core import exit_codes, launch


def worker_exit(error: ChildFailedError) -> int:
    """The exit code of the first worker that failed, as the pod's exit code."""
    _, failure = error.get_first_failure()
    code = failure.exitcode
    if code < 0:
        return 128 - code  # killed by signal -code
    return code or 1


def main(argv: list[str] | None = None) -> int:
    try:
        run(parse_args(sys.argv[1:] if argv is None else argv))
    except ChildFailedError as error:
        code = worker_exit(error)
        print(f"ff_trainer.torchrun: a worker failed; exiting {code}, its exit code", file=sys.stderr)
        return code
    except SignalException as error:
        print(f"ff_trainer.torchrun: stopped by {error.sigval.name}; the workers were told to checkpoint",
              file=sys.stderr)
        return exit_codes.INTERRUPTED
    return exit_codes.DONE


if __name__ == "__main__":
    launch.skip_collection_at_exit()
    sys.exit(main())
