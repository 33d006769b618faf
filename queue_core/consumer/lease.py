"""The lease-renewal thread each worker runs beside its task loop."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Callable

from ..exceptions import StorageError
from .queue_protocol import WorkerQueue

logger = logging.getLogger('queue_core.consumer')


class LeaseRenewer(threading.Thread):
    """Every ``interval`` seconds: renew ``owner``'s leases, beat the heartbeat, and
    (process workers) check that the supervisor is still the parent.

    When the parent is gone the worker sends itself SIGTERM (its running task is
    interrupted and reported) and, should it still be alive ``grace`` seconds later,
    leaves at once with ``os._exit``.
    """

    def __init__(self, queue: WorkerQueue, owner: str, lease: float, *,
                 heartbeat: Callable[[], None] | None = None,
                 parent_pid: int | None = None, grace: float = 10.0) -> None:
        super().__init__(name='lease-renewer', daemon=True)
        self.queue = queue
        self.owner = owner
        self.lease = lease
        self.interval = lease / 3.0
        self.heartbeat = heartbeat
        self.parent_pid = parent_pid
        self.grace = grace
        self._halt = threading.Event()
        self._orphaned_at: float | None = None

    def stop(self) -> None:
        """Stop renewing (the thread ends within one interval; it is a daemon anyway)."""
        self._halt.set()

    def run(self) -> None:
        """Renew until stopped."""
        while True:
            self.tick()
            if self._halt.wait(self.interval):
                return

    def tick(self) -> None:
        """One round: heartbeat, parent check, renewal."""
        if self.heartbeat is not None:
            self.heartbeat()
        self._check_parent()
        try:
            self.queue.renew_leases(self.owner, self.lease)
        except StorageError as exc:
            logger.warning('worker %s could not renew its leases: %s', self.owner, exc)
        except Exception:  # never let renewal die silently: the lease would lapse
            logger.exception('worker %s: lease renewal failed', self.owner)

    def _check_parent(self) -> None:
        if self.parent_pid is None or os.getppid() == self.parent_pid:
            return
        now = time.monotonic()
        if self._orphaned_at is None:
            self._orphaned_at = now
            logger.error('worker %s: supervisor (pid %d) is gone; stopping', self.owner,
                         self.parent_pid)
            os.kill(os.getpid(), signal.SIGTERM)
        elif now - self._orphaned_at > self.grace:
            logger.error('worker %s did not stop after its supervisor died; exiting',
                         self.owner)
            os._exit(1)
