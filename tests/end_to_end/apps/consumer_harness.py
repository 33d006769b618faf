"""Running ``queue-consumer`` as a real subprocess in the end-to-end tests."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

APPS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(APPS_DIR)))


def read_signals(path: str) -> list[dict[str, Any]]:
    """Every signal line written so far (a partial last line is left for later)."""
    try:
        with open(path) as handle:
            text = handle.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split('\n')[:-1] if line]


def signals_of(path: str, task_id: str) -> list[str]:
    """The signal names recorded for one task, in order."""
    return [row['signal'] for row in read_signals(path) if row['id'] == task_id]


class Consumer:
    """``python -m queue_core.cli signals_app.q ...`` in its own session (process group),
    with cwd set to the apps directory, so ``signals_app`` imports as users' apps do."""

    def __init__(self, storage: str, signal_file: str, log_file: str, *args: str,
                 app: str = 'signals_app.q', env: dict[str, str] | None = None) -> None:
        self.args = [sys.executable, '-m', 'queue_core.cli', app, *args]
        self.env = dict(os.environ, QUEUE_STORAGE=storage, QUEUE_SIGNAL_FILE=signal_file,
                        PYTHONUNBUFFERED='1', **(env or {}))
        # The repository first, so the package imports the same way from any cwd.
        self.env['PYTHONPATH'] = os.pathsep.join(
            p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p)
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> 'Consumer':
        """Start the consumer."""
        with open(self.log_file, 'ab') as log:
            self.proc = subprocess.Popen(self.args, cwd=APPS_DIR, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        """The supervisor's pid (also the process group id)."""
        assert self.proc is not None
        return self.proc.pid

    def send(self, signum: int) -> None:
        """Signal the supervisor only."""
        os.kill(self.pid, signum)

    def send_group(self, signum: int) -> None:
        """Signal the supervisor and every worker (the whole process group)."""
        os.killpg(self.pid, signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the supervisor to exit; its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log(self) -> str:
        """What the consumer logged so far."""
        with open(self.log_file, errors='replace') as handle:
            return handle.read()

    def worker_pids(self) -> list[int]:
        """Pids of the supervisor's live children (workers, embedded broker)."""
        try:
            with open('/proc/%d/task/%d/children' % (self.pid, self.pid)) as handle:
                return [int(pid) for pid in handle.read().split()]
        except FileNotFoundError:
            return []

    def close(self) -> None:
        """Kill whatever is left of the process group."""
        if self.proc is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
