"""``queue-consumer`` as a real subprocess for the bad-input tests, in its own process
group, its output collected in a file."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from scripts.support.procs import Child, child_env


APPS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'apps')


class ConsumerProcess(Child):
    """``python -m queue_core.cli APP ARGS`` run from the apps directory."""

    def __init__(self, app: str, *args: str, storage: str, log_path: str) -> None:
        super().__init__('consumer', [sys.executable, '-m', 'queue_core.cli', app, *args],
                         log_path, env=child_env(BAD_INPUT_STORAGE=storage), cwd=APPS_DIR,
                         stdin=None)

    def run(self, timeout: float = 30.0) -> int:
        """Start it and wait for it to exit by itself; the exit status."""
        self.start()
        assert self.proc is not None
        return self.proc.wait(timeout)

    def output(self) -> str:
        """What it printed and logged so far."""
        return self.log_text()

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
        self.kill()
        return status
