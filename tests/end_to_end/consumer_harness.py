"""Running ``queue-consumer`` as a real subprocess in the end-to-end tests, on the task apps
of ``apps/`` (importable by their top-level names: ``pythonpath`` in pyproject.toml)."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from scripts.support.polling import wait_until
from scripts.support.procs import Child, child_env


APPS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'apps')


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


class Consumer(Child):
    """``python -m queue_core.cli signals_app.q ...`` in its own session (process group),
    with cwd set to the apps directory, so ``signals_app`` imports as users' apps do."""

    def __init__(self, storage: str, signal_file: str, log_file: str, *args: str,
                 app: str = 'signals_app.q', env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> None:
        command = command or [sys.executable, '-m', 'queue_core.cli']
        # The repository first on the path, so the package imports the same way from any cwd.
        super().__init__('consumer', [*command, app, *args], log_file,
                         env=child_env(QUEUE_STORAGE=storage, QUEUE_SIGNAL_FILE=signal_file,
                                       **(env or {})),
                         cwd=APPS_DIR, stdin=None)

    def wait(self, timeout: float = 30.0) -> int:  # type: ignore[override]
        """Wait for the supervisor to exit; its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log(self) -> str:
        """What the consumer logged so far."""
        return self.log_text()

    def worker_pids(self) -> list[int]:
        """Pids of the supervisor's live children (workers, embedded broker)."""
        return self.children()

    def close(self) -> None:
        """Kill whatever is left of the process group."""
        self.kill()
        self.proc = None


def load_app(storage: str) -> Any:
    """Import ``signals_app`` as the consumer does (top-level name) and point it at
    ``storage``."""
    import importlib

    from queue_core.storage import storage_from_url
    app = importlib.import_module('signals_app')
    app.q.storage = storage_from_url(storage, app.q.name)
    return app


def causal(rows: list[dict[str, Any]]) -> list[str]:
    """One task's signal names in lifecycle order.

    An ENQUEUED is emitted once the message is stored, so another process may take the
    task and write its EXECUTING line (and more) first (SPEC §7: handlers run where events
    happen). Such an ENQUEUED line, found after a run of lines that another process began
    with an EXECUTING no ENQUEUED line precedes, is moved back before that EXECUTING;
    nothing else is reordered.
    """
    rows = list(rows)
    for j, row in enumerate(rows):
        if row['signal'] != 'enqueued':
            continue
        k = j
        while k > 0 and rows[k - 1]['pid'] != row['pid']:
            k -= 1
            if rows[k]['signal'] == 'executing':
                unpaid = k == 0 or rows[k - 1]['signal'] != 'enqueued'
                if unpaid and all(r['pid'] == rows[k]['pid'] for r in rows[k:j]):
                    rows.insert(k, rows.pop(j))
                break
    return [row['signal'] for row in rows]


class Run:
    """One end-to-end scenario: a signal file, the app in this process, consumers."""

    def __init__(self, tmp_path: Any, storage: str) -> None:
        self.tmp_path = tmp_path
        self.storage = storage
        self.signal_file = str(tmp_path / 'signals.jsonl')
        os.environ['QUEUE_SIGNAL_FILE'] = self.signal_file
        self.app = load_app(storage)
        self.q = self.app.q
        self.consumers: list[Consumer] = []

    def consumer(self, *args: str, env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> Consumer:
        """Start a consumer on this run's storage and signal file."""
        log = str(self.tmp_path / ('consumer-%d.log' % len(self.consumers)))
        consumer = Consumer(self.storage, self.signal_file, log, *args, env=env,
                            command=command).start()
        self.consumers.append(consumer)
        return consumer

    def rows(self) -> list[dict[str, Any]]:
        """Every signal line so far."""
        return read_signals(self.signal_file)

    def signals(self, task_id: str) -> list[str]:
        """One task's signals in lifecycle order."""
        return causal([row for row in self.rows() if row['id'] == task_id])

    def wait_running(self, key: str, timeout: float = 20.0) -> None:
        """Wait until ``slow_once(key)`` is inside its first, blocking run."""
        wait_until(lambda: any(r['signal'] == '_running' and r['id'] == key
                               for r in self.rows()), timeout,
                   message='slow_once(%r) to run\n%s' % (key, self.logs()))

    def finals(self) -> dict[str, list[str]]:
        """Task id -> the final signals recorded for it."""
        out: dict[str, list[str]] = {}
        for row in self.rows():
            if row['final']:
                out.setdefault(row['id'], []).append(row['signal'])
        return out

    def logs(self) -> str:
        """Every consumer's log, for assertion messages."""
        return '\n'.join(c.log() for c in self.consumers)

    def close(self) -> None:
        """Kill every consumer still running."""
        for consumer in self.consumers:
            consumer.close()
        os.environ.pop('QUEUE_SIGNAL_FILE', None)


def pid_is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False
