"""`python -m ff_trainer.pack --sweep SRC --steps ID,ID,...`: several experiments sharing one GPU (a packed Job).

One trainer process per step (`python -m ff_trainer`, forked from a warm fork server where it can, as
`ffctl run` does: ff_core.launch; torch is imported once per pod), all at once on the same device: each
trains and writes its own result, so one that fails leaves the others alone. When all have ended, their exit
codes go to the termination log as JSON {"exit": {step: code}} (Kubernetes puts it in the pod's status,
where the operator reads each experiment's outcome) and the pack exits 0, whatever the codes. A SIGTERM
(preemption, deletion) is passed to every trainer, which checkpoint, and the pack exits as interrupted: the
retry resumes them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from ff_core import exit_codes, launch

TERMINATION_LOG_ENV = "FF_TERMINATION_LOG"
TERMINATION_LOG = "/dev/termination-log"  # Kubernetes' default terminationMessagePath


def write_termination(codes: dict[str, int]) -> None:
    path = os.environ.get(TERMINATION_LOG_ENV, TERMINATION_LOG)
    try:
        with open(path, "w") as handle:
            json.dump({"exit": codes}, handle, separators=(",", ":"))
    except OSError as error:  # outside Kubernetes (no such file): the summary on stderr is all there is
        print(f"pack: could not write the exit codes to {path} ({error})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ff_trainer.pack", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", required=True, help="the sweep file, or env:NAME (Jobs)")
    parser.add_argument("--steps", required=True, help="comma-separated experiment (or WSD step) ids")
    parser.add_argument("--store", help="result store URI; default: the sweep's")
    args = parser.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // len(steps))))  # the pod's cores, shared
    extra = ["--store", args.store] if args.store else []
    procs: dict = {}  # step -> its trainer
    stopped = []

    def stop_all() -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def forward(signum, _frame) -> None:
        stopped.append(signum)
        stop_all()

    signal.signal(signal.SIGTERM, forward)  # before the trainers start: a SIGTERM never orphans one
    launch.warm_up(quiet=False)  # the members' output is the pod's log, as ours is
    for step in steps:
        if stopped:  # stopped while starting them: the rest are not started (their retry trains them)
            break
        procs[step] = launch.start(launch.TRAINER, launch.trainer_args(args.sweep, step, *extra), env, None)
    if stopped:
        stop_all()  # one started while the signal was being handled
    codes = {step: procs[step].wait() if step in procs else exit_codes.INTERRUPTED for step in steps}
    write_termination(codes)
    print("pack: " + ", ".join(f"{step} exit {code}" for step, code in codes.items()), file=sys.stderr)
    return exit_codes.INTERRUPTED if stopped else exit_codes.DONE


if __name__ == "__main__":
    launch.skip_collection_at_exit()
    sys.exit(main())
