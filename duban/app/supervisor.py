"""Several programmes in one installation: `duban run` starts one service process per programme.

Each child is `duban --programme CODE run …` with the same configuration file, so each has its own
database (or PostgreSQL schema), its own single-leader lock and its own rule set; a fault in one
programme's rules or database does not stop the others' rounds. The parent forwards SIGTERM, SIGINT
and SIGHUP (reload) and exits when a child exits on its own, so systemd's Restart= restarts the set.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ["run_programmes"]


def _command(code: str, run_args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "duban", "--programme", code, "run", *run_args]


def run_programmes(codes: Sequence[str], run_args: Sequence[str], *, once: bool, poll_seconds: float = 1.0) -> int:
    """Run every programme's service; returns the exit code for the whole set."""
    if once:
        # Catch-up rounds one programme after another: the worst exit code tells cron what happened.
        return max((subprocess.call(_command(code, run_args)) for code in codes), default=0)
    children = {code: subprocess.Popen(_command(code, run_args)) for code in codes}
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        finished = {code: child.returncode for code, child in children.items() if child.poll() is not None}
        if stopping and len(finished) == len(children):
            return max(finished.values(), default=0)
        if finished and not stopping:
            # One programme's service ended on its own: stop the rest and let the supervisor restart all.
            stopping = True
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            for child in children.values():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
            return max(code for code in finished.values()) or 1
        time.sleep(poll_seconds)
