"""The consumer's presence on the bus: the ``_consumer`` meta topic (SPEC §7 "Meta topics").

Every ``interval`` seconds the supervisor sends ``{v: 1, queue, host, pid, workers,
started, ts}`` to the broker's ingest as a one-frame message holding that msgpack map,
and ``{..., stopping: true}`` when it stops; the broker fans it out to every subscriber as
``[b"_consumer", map]``, so a viewer knows which consumers are alive. An older broker
counts the frame as malformed, nothing worse.

The beacon's PUSH socket uses the consumer's bus settings (CURVE keys included) and is
watched for a refused handshake, so a consumer whose key the broker does not accept says
so in its log once (its workers' publishers use the same keys).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

logger = logging.getLogger('queue_core.consumer')

#: Seconds between two announcements.
INTERVAL = 5.0
#: Longest the last announcement (``stopping``) may wait for the broker at close.
CLOSE_LINGER_MS = 1000


class ConsumerBeacon:
    """Announces one consumer on ``bus`` (an ingest endpoint or a ``BusConfig``) from a
    thread of its own, which alone owns the socket."""

    def __init__(self, bus: Any, queue_name: str, workers: int,
                 interval: float = INTERVAL) -> None:
        from ..bus_adapter import BusConfig
        self.config = BusConfig.coerce(bus)
        self.interval = interval
        self.fields = {'v': 1, 'queue': queue_name, 'host': socket.gethostname(),
                       'pid': os.getpid(), 'workers': workers, 'started': time.time()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def message(self, stopping: bool = False) -> bytes:
        """The one frame sent now: the msgpack map, ``stopping: true`` at the end."""
        import msgpack
        fields = dict(self.fields, ts=time.time())
        if stopping:
            fields['stopping'] = True
        return msgpack.packb(fields)

    def start(self) -> None:
        """Start announcing (the first message goes out at once)."""
        self._thread = threading.Thread(target=self._run, name='consumer-beacon', daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Send ``stopping: true`` and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        from ..bus_adapter import open_announcer
        try:
            context, sock = open_announcer(self.config, 'consumer %d' % os.getpid(), logger)
        except Exception:
            logger.exception('announcing the consumer on the bus failed')
            return
        try:
            while True:
                self._send(sock, self.message())
                if self._stop.wait(self.interval):
                    break
            self._send(sock, self.message(stopping=True))
        except Exception:
            logger.exception('announcing the consumer on the bus failed')
        finally:
            sock.close(linger=CLOSE_LINGER_MS)
            context.term()

    @staticmethod
    def _send(sock: Any, frame: bytes) -> None:
        import zmq
        try:
            sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:  # no broker yet, queue full: the next announcement says the same
            pass
