"""``queue-consumer`` as a real subprocess for the bad-input tests, in its own process
group, its output collected in a file."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

APPS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'apps')
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ConsumerProcess:
    """``python -m queue_core.cli APP ARGS`` run from the apps directory."""

    def __init__(self, app: str, *args: str, storage: str, log_path: str) -> None:
        self.args = [sys.executable, '-m', 'queue_core.cli', app, *args]
        self.env = dict(os.environ, BAD_INPUT_STORAGE=storage, PYTHONUNBUFFERED='1')
        self.env['PYTHONPATH'] = os.pathsep.join(
            p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> 'ConsumerProcess':
        """Start it."""
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(self.args, cwd=APPS_DIR, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def run(self, timeout: float = 30.0) -> int:
        """Start it and wait for it to exit by itself; the exit status."""
        self.start()
        assert self.proc is not None
        return self.proc.wait(timeout)

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What it printed and logged so far."""
        with open(self.log_path, errors='replace') as handle:
            return handle.read()

    def stop(self) -> int | None:
        """SIGINT (graceful) and wait; then make sure nothing of it is left."""
        if self.proc is None:
            return None
        status: Any = None
        if self.alive():
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                status = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        else:
            status = self.proc.returncode
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        return status
