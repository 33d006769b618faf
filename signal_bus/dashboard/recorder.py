"""The history subscriber: follows the bus into a ``History``, in batched transactions.

On start it resumes where the history stopped: from the broker's ring when the broker is
the same run (same ``epoch``), counting what the ring no longer holds as a loss; after a
broker restart it stores the restart and takes the new broker's whole ring (so does a
first start). The ring is read page by page through the control socket straight into the
history, so a catch-up holds one batch in memory, not the ring. While running,
losses the ``Subscriber`` reports (a gap the ring could not repair, a publisher's dropped
events, a broker restart) are stored in stream order with the events around them.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import zmq

from ..config import DEFAULT_PUBLISH
from ..exceptions import BusError
from ..history import History
from ..history_batch import ReceivedEvent, received_event
from ..keys import client_keys
from ..subscriber import ControlClient, Subscriber

logger = logging.getLogger('signal_bus.dashboard.recorder')


@dataclass(frozen=True)
class RecorderConfig:
    """Where the bus is and how the recorder batches its writes."""

    connect: str = DEFAULT_PUBLISH
    control: str | None = None
    curve_server_key: str | None = None
    curve_keypair: str | None = None
    batch_size: int = 5000
    batch_seconds: float = 0.05
    prune_seconds: float = 10.0
    #: Generous, so a burst waits in the socket rather than being repaired from the ring.
    rcvhwm: int = 200_000


class HistoryRecorder:
    """A thread that subscribes to every event and stores it, with losses and restarts."""

    def __init__(self, history: History, config: RecorderConfig = RecorderConfig()) -> None:
        self.history = history
        self.config = config
        self.resumed = threading.Event()
        self._stop = threading.Event()
        self._incidents: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self.stored = 0

    def start(self) -> 'HistoryRecorder':
        """Start the recording thread."""
        self._thread = threading.Thread(target=self._run, name='history-recorder', daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop recording (what was received is written first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        config = self.config
        sub = Subscriber(config.connect, control=config.control,
                         curve_server_key=config.curve_server_key,
                         curve_keypair=config.curve_keypair, rcvhwm=config.rcvhwm)
        sub.on_loss(self._on_loss)
        try:
            if self._connect(sub):
                self._resume(sub)
                self.resumed.set()
                self._record(sub)
        except Exception:
            logger.exception('the history recorder stopped on an error')
        finally:
            sub.close()

    def _connect(self, sub: Subscriber) -> bool:
        """Wait for the broker (for as long as it takes); False when stopped first."""
        while not self._stop.is_set():
            try:
                sub.wait_connected(timeout=1.0)
                return True
            except TimeoutError:
                continue
        return False

    def _resume(self, sub: Subscriber) -> None:
        """Queue from the ring what the history has not stored yet; store what is gone."""
        while True:
            try:
                stats = sub.broker_stats()
                break
            except (BusError, TimeoutError) as exc:
                logger.warning('waiting for the broker stats: %s', exc)
                if self._stop.wait(1.0):
                    return
        epoch, seq = self.history.position()
        last_seq, ring_first = int(stats['last_seq']), int(stats.get('ring_first_seq') or 1)
        if epoch is not None and epoch != stats.get('epoch'):
            self._incidents.append({'kind': 'restart', 'epoch': stats.get('epoch'),
                                    'ts': time.time()})
            seq = 0
        if seq < ring_first - 1 and last_seq >= ring_first and (epoch is not None):
            self._lost(seq + 1, ring_first - 1)
        if last_seq >= max(seq + 1, ring_first):
            self._catch_up(sub.control_endpoint, max(seq + 1, ring_first), last_seq)

    def _lost(self, first_seq: int, last_seq: int) -> None:
        self._incidents.append({'kind': 'loss', 'count': last_seq - first_seq + 1,
                                'first_seq': first_seq, 'last_seq': last_seq,
                                'ts': time.time()})

    def _catch_up(self, endpoint: str, first: int, last: int) -> None:
        """Store the ring's ``first..last`` page by page, before the live stream (which
        the history then skips up to ``last``); memory stays bounded by one batch."""
        config = self.config
        context = zmq.Context()
        control = ControlClient(context, endpoint,
                                client_keys(config.curve_server_key, config.curve_keypair),
                                10.0)
        expected, batch = first, list[ReceivedEvent]()
        try:
            for message in control.replay(first, last):
                if message.meta.seq > expected:  # evicted from the ring while we read
                    self._lost(expected, message.meta.seq - 1)
                expected = message.meta.seq + 1
                meta = message.meta
                batch.append(received_event(message.body, meta.seq, meta.sseq, meta.epoch,
                                            meta.gap))
                if len(batch) >= config.batch_size:
                    self._store_pending(batch)
                    batch = []
        except (BusError, TimeoutError) as exc:
            logger.warning('the ring replay stopped at seq %d: %s', expected, exc)
        finally:
            control.close()
            context.term()
        if expected <= last:
            self._lost(expected, last)
        self._store_pending(batch)

    def _store_pending(self, batch: list[ReceivedEvent]) -> None:
        incidents, self._incidents = self._incidents, []
        self._store(batch, incidents)

    def _on_loss(self, count: int | None, first_seq: int | None,
                 last_seq: int | None) -> None:
        kind = 'restart' if count is None else ('loss' if first_seq is not None
                                                 else 'publisher-loss')
        self._incidents.append({'kind': kind, 'count': count, 'first_seq': first_seq,
                                'last_seq': last_seq, 'ts': time.time()})

    def _record(self, sub: Subscriber) -> None:
        next_prune = time.monotonic() + self.config.prune_seconds
        while not self._stop.is_set():
            batch = self._take_batch(sub)
            if batch or self._incidents:
                self._store_pending(batch)
            if time.monotonic() >= next_prune:
                self.history.prune()
                next_prune = time.monotonic() + self.config.prune_seconds

    def _store(self, batch: list[ReceivedEvent], incidents: list[dict[str, Any]]) -> None:
        """Store one batch; a failed write (disk full, file locked) is retried, never
        dropped, while the broker's socket and ring hold what arrives meanwhile."""
        while True:
            try:
                self.stored += self.history.store(batch, incidents)
                return
            except Exception as exc:  # sqlite3 or redis errors: the store is unwell, retry
                logger.error('could not write %d events to the history (%s); retrying',
                             len(batch), exc)
                if self._stop.wait(1.0):
                    return

    def _take_batch(self, sub: Subscriber) -> list[ReceivedEvent]:
        batch: list[ReceivedEvent] = []
        deadline = time.monotonic() + self.config.batch_seconds
        while len(batch) < self.config.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = sub.receive(remaining)
            if event is None:
                break
            batch.append(received_event(event.body_frame(), event.seq, event.sseq,
                                        event.epoch, event.gap))
        return batch
