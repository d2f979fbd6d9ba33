"""How the trainer's programs start: forked from a warm fork server, or as processes of their own.

`ffctl run` calls warm_up() first: one `python -m ff_trainer.forkserver` imports torch and the trainer while
ffctl reads the sweep, then forks a child per program (ff_trainer/forkserver.py says why, and what a child
is); a trainer then starts in milliseconds instead of seconds. Without warm_up (`ffctl plan` counts
parameters once: a server would cost more than it saves), on macOS (it forks badly once frameworks are
loaded), with FF_FORKSERVER=0, or when the server cannot start (a client-only install without torch: each
program's own output then says what is missing), every program is `python -m MODULE` as before. Both kinds
are driven the same way: pid, poll(), wait(timeout), send_signal(), kill(). The pack launcher
(ff_trainer.pack) forks its members the same way; skip_collection_at_exit is how each of the trainer's programs
ends. Standard library only: the client and the trainer use it.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

FORKSERVER_ENV = "FF_FORKSERVER"  # "0": a process per program
TRAINER, PACK = "ff_trainer", "ff_trainer.pack"  # the trainer's modules: one step, and several sharing a GPU
TORCHRUN = "ff_trainer.torchrun"  # torchrun, exiting with the failed worker's code (a Job's launcher)


def trainer_args(sweep: str, step: str, *extra: str) -> list[str]:
    """`python -m ff_trainer`'s arguments for one step of the sweep (a file, or env:NAME in a Job); the
    executor, the pack launcher and the operator's Jobs all start a trainer with these."""
    return ["--sweep", sweep, "--experiment", step, *extra]
STARTUP_SECONDS = 120  # how long the server may take to import torch before programs start as processes


class Forked:
    """A program forked by the server: what callers use of a Popen."""

    def __init__(self, server: ForkServer, pid: int):
        self.server, self.pid = server, pid

    def poll(self) -> int | None:
        return self.server.exit_code(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        if not self.server.wait_for(self.pid, timeout):
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
        return self.poll()

    def send_signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """One `python -m ff_trainer.forkserver` and what it has said: the pids it forked, their exit codes."""

    def __init__(self, quiet: bool):
        requests, self.requests = os.pipe()
        self.replies, replies = os.pipe()
        # `quiet`: the server's own output (an import's warning, its traceback when torch is missing) is dropped
        self.proc = subprocess.Popen([sys.executable, "-m", "ff_trainer.forkserver", str(requests), str(replies)],
                                     pass_fds=(requests, replies), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL if quiet else None,
                                     stderr=subprocess.DEVNULL if quiet else None)
        os.close(requests)
        os.close(replies)
        self.pids: queue.Queue = queue.Queue()
        self.codes: dict[int, int] = {}
        self.ended = threading.Condition()
        self.gone = False
        self.ready = threading.Event()
        self.lock = threading.Lock()  # one request and its pid reply at a time
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        for line in os.fdopen(self.replies, "rb"):
            message = json.loads(line)
            if "ready" in message:
                self.ready.set()
            elif "pid" in message:
                self.pids.put(message["pid"])
            else:
                with self.ended:
                    self.codes[message["exited"]] = message["code"]
                    self.ended.notify_all()
        with self.ended:
            self.gone = True
            self.ended.notify_all()
        self.ready.set()
        self.pids.put(None)

    def serving(self) -> bool:
        """Whether the server imported torch and serves (False: it failed, or took too long)."""
        self.ready.wait(STARTUP_SECONDS)
        return self.ready.is_set() and not self.gone

    def fork(self, module: str, argv: list[str], env: dict[str, str], stdout: Path | None, stderr: Path | None,
             cwd: Path) -> Forked | None:
        request = {"module": module, "argv": argv, "env": env, "cwd": str(cwd),
                   "stdout": stdout and str(stdout), "stderr": stderr and str(stderr)}
        with self.lock:
            try:
                os.write(self.requests, (json.dumps(request) + "\n").encode())
            except OSError:  # the server has gone
                return None
            pid = self.pids.get()
        return None if pid is None else Forked(self, pid)

    def exit_code(self, pid: int) -> int | None:
        with self.ended:
            if pid in self.codes:
                return self.codes[pid]
            if self.gone and not running(pid):
                return 1  # the server died first: the code went with it; the program's output says what happened
            return None

    def wait_for(self, pid: int, timeout: float | None) -> bool:
        with self.ended:
            return self.ended.wait_for(lambda: pid in self.codes or self.gone, timeout)

    def close(self) -> None:
        """End the server (one still importing is not waited for); programs still running carry on."""
        if not self.ready.is_set():
            self.proc.kill()
        if self.requests >= 0:
            os.close(self.requests)
            self.requests = -1
        self.proc.wait()


def running(pid) -> bool:
    """Whether a process of this machine with that pid (an int, or as a lock file wrote it) is alive."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def skip_collection_at_exit() -> None:
    """At this process's exit, after every other exit handler, leave what it made to the operating system
    instead of collecting it (gc.freeze): with torch loaded, the interpreter's last collection took about 1 s
    of every trainer program's exit (`import torch, torch._dynamo, ff_trainer.run`: 3.5 s with it, 2.5 s
    without). Objects are still released as their references go; only the cycle collector is skipped. For the
    trainer's programs (`if __name__ == "__main__"`), never for a library caller."""
    atexit.register(gc.freeze)  # registered first, so run last


_server: ForkServer | None = None


def warm_up(quiet: bool = True) -> None:
    """Start this process's fork server (once; it imports torch while the caller goes on). Not `quiet`: the
    server's output, and so that of programs started with stdout=None, is this process's own."""
    global _server
    if _server is None and os.environ.get(FORKSERVER_ENV) != "0" and sys.platform.startswith("linux"):
        _server = ForkServer(quiet)
        atexit.register(_server.close)


def start(module: str, argv: list[str], env: dict[str, str], stdout: Path | None, stderr: Path | None = None,
          cwd: Path | None = None):
    """`python -m module argv` with `env` in `cwd` (default ours), its output appended to `stdout` (and
    `stderr`, default the same file; None for both: this process's own), in a session of its own (Ctrl-C
    reaches only ffctl, which stops programs with SIGTERM; the pack launcher passes SIGTERM on itself)."""
    stderr, cwd = stderr or stdout, cwd or Path.cwd()
    if _server is not None and _server.serving():
        forked = _server.fork(module, argv, env, stdout, stderr, cwd)
        if forked is not None:
            return forked
    command = [sys.executable, "-m", module, *argv]
    if stdout is None:
        return subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True)
    with open(stdout, "ab") as out, open(stderr, "ab") as err:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT if stderr == stdout else err, env=env,
                                cwd=cwd, start_new_session=True)
