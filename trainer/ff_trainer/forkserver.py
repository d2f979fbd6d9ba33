"""`python -m ff_trainer.forkserver REQUESTS REPLIES`: trainers forked from one process that imported torch once.

A `python -m ff_trainer` process spends about 4.5 s of CPU before its first step here: 2.5 s importing torch
and the trainer, and 2 s more when PyTorch's FLOP counter first dispatches (it imports torch._dynamo). On a
sweep of small experiments that is a large share of the run. This process pays it once: it imports what every
trainer imports, then forks one child per request, and the child runs the trainer as `python -m ff_trainer`
would have. Forking `ffctl` itself would not be safe (it has threads); this process has none of ours and
does no tensor work before it forks (no OpenMP thread team, no CUDA context to inherit).

Protocol (ff_core.launch is the other end), one JSON object per line, on the two pipe descriptors given.
Requests: {"module": M, "argv": [...], "env": {...}, "cwd": DIR, "stdout": FILE or null, "stderr": FILE or
null}. Replies: {"ready": true} once imported, then {"pid": N} for each request in order, and {"exited": N,
"code": C} when child N ends (C as subprocess reports it: negative for a signal). The end of the requests
ends the server; children still running carry on (each has a session of its own, like the executor's
processes).

The child is `python -m M ARGV` run in a warm interpreter: a session of its own; stdin /dev/null, stdout
and stderr appended to the files given (or the server's own, inherited, for null); the environment given
(torch's thread count from its OMP_NUM_THREADS, since the OpenMP runtime read the variable when torch was
imported); the working directory first on sys.path as `python -m` puts it, then PYTHONPATH's entries; the
default signal handlers; M run by runpy as `-m` runs it, and the interpreter's normal shutdown (its exit
status is M's exit code).
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import select
import signal
import sys

import torch
import torch._dynamo  # noqa: F401  imported by PyTorch's FLOP counter on first use (metrics.py): 2 s, paid here

import ff_trainer.count  # noqa: F401  what every warm child imports anyway
import ff_trainer.run  # noqa: F401

_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT
_SIGINT = signal.default_int_handler  # SIGINT's handler as this server inherited it


_PIPES: dict[str, int] = {}  # "requests" and "replies": the descriptors of the protocol


def _reply(message: dict) -> None:
    os.write(_PIPES["replies"], (json.dumps(message) + "\n").encode())


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        _reply({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def serve() -> dict | None:
    """Fork a child per request until the requests end (then None); in a child, return its request."""
    global _SIGINT
    _SIGINT = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for ffctl, which then ends the requests
    # What the imports made, moved out of the collector's sight: a child's collections (and its interpreter's
    # shutdown) then leave those pages alone instead of copying all of them. A forked trainer's exit took 1.0-1.2
    # s without this, 0.26-0.41 s with it (a tiny experiment trains in 0.1 s).
    gc.freeze()
    _reply({"ready": True})
    children: set[int] = set()
    pending = b""
    while True:
        readable, _, _ = select.select([_PIPES["requests"]], [], [], 0.05)
        _reap(children)
        if not readable:
            continue
        chunk = os.read(_PIPES["requests"], 65536)
        if not chunk:
            return None
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                return request
            children.add(pid)
            _reply({"pid": pid})


def _become(request: dict) -> None:
    """Turn this fresh fork into the process `python -m MODULE` would have been."""
    os.setsid()
    for fd in _PIPES.values():  # the server's alone: its end is seen when it ends, not when its children do
        os.close(fd)
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request.get("stdout"), _APPEND),
                            (2, request.get("stderr"), _APPEND)):
        if path is not None:
            opened = os.open(path, flags, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
    # As a new interpreter would: Python's handler, unless SIGINT came ignored (a job started with `&`)
    signal.signal(signal.SIGINT, signal.SIG_IGN if _SIGINT == signal.SIG_IGN else signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    env = request["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request["cwd"])
    extra = [request["cwd"], *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    sys.path[:] = extra + [p for p in sys.path[1:] if p not in extra]
    if env.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))


def main() -> int:
    _PIPES["requests"], _PIPES["replies"] = (int(fd) for fd in sys.argv[1:3])
    request = serve()
    if request is None:
        return 0
    _become(request)
    sys.argv = [request["module"], *request["argv"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)  # exits with the module's code
    return 0


if __name__ == "__main__":
    sys.exit(main())
