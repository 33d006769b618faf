"""The steady stream of tasks: successes, failures with retries, scheduled and slow ones.

Only a task whose enqueue call returned counts as enqueued. A call that raised (the
storage was down or stalled) is counted apart, under the id it was given, and the work is
offered again under a new id: the failed call may still have reached the storage (a
stalled server executes the write once it wakes), so reusing the id would make one task
id stand for two messages.
"""
from __future__ import annotations

import json
import random
import threading
import time
import uuid
from typing import Any, Callable

from queue_core.exceptions import StorageError

#: (kind, weight) of the task mix.
MIX = (('ok', 50), ('flaky-recovers', 15), ('flaky-fails', 10), ('slow', 10),
       ('scheduled', 15))


class Workload:
    """Enqueues about ``rate`` tasks a second from a thread until ``stop()``."""

    def __init__(self, app: Any, rate: float, rng: random.Random, path: str) -> None:
        self.app = app
        self.rate = rate
        self.rng = rng
        self.path = path
        self.enqueued: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.probe_errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='chaos-workload', daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start enqueueing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop enqueueing and wait for the thread (an enqueue in progress finishes)."""
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        interval = 1.0 / self.rate
        with open(self.path, 'a') as log:
            while not self._stop.is_set():
                started = time.monotonic()
                self._one(log)
                self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def _pick(self) -> str:
        kinds, weights = zip(*MIX)
        return self.rng.choices(kinds, weights)[0]

    def _call(self, kind: str, task_id: str) -> Callable[[], Any]:
        app, rng, n = self.app, self.rng, self.rng.randrange(1000)
        if kind == 'ok':
            return lambda: app.ok(n, id=task_id)
        if kind == 'flaky-recovers':
            delay = rng.choice((0, 1))
            return lambda: app.flaky(n, 1, id=task_id, retry_delay=delay)
        if kind == 'flaky-fails':
            return lambda: app.flaky(n, 3, id=task_id)
        if kind == 'slow':
            seconds = round(rng.uniform(0.2, 1.2), 2)
            return lambda: app.slow(seconds, id=task_id)
        delay = rng.choice((1, 2, 3))
        return lambda: app.ok.schedule(args=(n,), delay=delay, id=task_id)

    def _one(self, log: Any) -> None:
        kind = self._pick()
        task_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self._enqueue(kind, task_id, self._call(kind, task_id), log)

    def _enqueue(self, kind: str, task_id: str, call: Callable[[], Any], log: Any) -> Any:
        """Make the call; record the task as enqueued, or the call as failed."""
        row = {'id': task_id, 'kind': kind, 't': time.time()}
        try:
            handle = call()
        except StorageError as exc:
            row['error'] = str(exc)[:200]
            with self._lock:
                self.failed.append(row)
            log.write(json.dumps(dict(row, k='failed')) + '\n')
            log.flush()
            return None
        with self._lock:
            self.enqueued.append(row)
        log.write(json.dumps(dict(row, k='enqueued')) + '\n')
        log.flush()
        return handle

    def probe(self, timeout: float) -> bool:
        """Enqueue one task and wait for its result: whether the system works again."""
        deadline = time.monotonic() + timeout
        with open(self.path, 'a') as log:
            while time.monotonic() < deadline:
                task_id = str(uuid.uuid4())
                handle = self._enqueue('probe', task_id,
                                       lambda: self.app.ok(0, id=task_id), log)
                if handle is not None:
                    break
                time.sleep(0.2)
            else:
                return False
        while time.monotonic() < deadline:
            try:
                handle.get(blocking=True, timeout=deadline - time.monotonic(),
                           preserve=True)
                return True
            except StorageError:
                time.sleep(0.2)
            except Exception as exc:   # ResultTimeout: not done in time
                self.probe_errors.append('%s: %s' % (type(exc).__name__, exc))
                return False
        return False

    def counts(self) -> tuple[int, int]:
        """``(enqueued, failed)`` so far."""
        with self._lock:
            return len(self.enqueued), len(self.failed)

