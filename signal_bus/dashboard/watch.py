"""``BusWatch``: what the dashboard knows of the bus besides events — whether the broker
is heard (``_heartbeat``), which consumers are alive (``_consumer``, SPEC §7) and the
broker's ``stats``. One thread owns its SUB and control sockets; readers get copies.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import zmq

from .. import wire
from ..exceptions import BusError, WireError
from ..config import neighbour_endpoint
from ..keys import apply_client, client_keys
from ..subscriber import ControlClient

logger = logging.getLogger('signal_bus.dashboard.watch')

#: A broker unheard for this long is ``silent`` (heartbeats come every second).
SILENCE_SECONDS = 3.0
#: A consumer unheard for this long is dropped from the list (it reports every 5 s).
CONSUMER_TIMEOUT = 15.0
#: How often the broker's stats are asked for.
STATS_INTERVAL = 2.0
#: At most this many consumers are remembered.
MAX_CONSUMERS = 1000


class BusWatch:
    """Heartbeats, consumers and broker stats, refreshed by a background thread."""

    def __init__(self, endpoint: str, control: str | None = None,
                 curve_server_key: str | None = None, curve_keypair: str | None = None) -> None:
        self.endpoint = endpoint
        self.control = control or neighbour_endpoint(endpoint)
        self._curve = client_keys(curve_server_key, curve_keypair)
        self._lock = threading.Lock()
        self._heard: float | None = None
        self._heartbeat: dict[str, Any] = {}
        self._consumers: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}
        self._stats: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='bus-watch', daemon=True)

    def start(self) -> 'BusWatch':
        """Start watching."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching and close the sockets."""
        self._stop.set()
        self._thread.join(5)

    # -- what readers see ----------------------------------------------------------------

    def broker_state(self) -> str:
        """``connected`` when a heartbeat came in the last 3 s, else ``silent``."""
        with self._lock:
            heard = self._heard
        return 'connected' if heard is not None and \
            time.monotonic() - heard < SILENCE_SECONDS else 'silent'

    def heartbeat(self) -> dict[str, Any]:
        """The last heartbeat map (empty before any)."""
        with self._lock:
            return dict(self._heartbeat)

    def consumers(self) -> list[dict[str, Any]]:
        """Live consumers (``queue``, ``host``, ``pid``, ``workers``, ``started``, ``ts``)."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (seen, _) in self._consumers.items()
                        if now - seen > CONSUMER_TIMEOUT]:
                del self._consumers[key]
            return sorted((dict(data) for _, data in self._consumers.values()),
                          key=lambda c: (str(c.get('host')), int(c.get('pid') or 0)))

    def broker_stats(self) -> dict[str, Any] | None:
        """The broker's last ``stats`` answer, or None when it did not answer lately."""
        with self._lock:
            return None if self._stats is None else dict(self._stats)

    # -- the thread ----------------------------------------------------------------------

    def take(self, message: wire.MetaMessage) -> None:
        """Take one meta message into account (the thread calls it; tests may too)."""
        data = message.data
        with self._lock:
            if message.topic == '_heartbeat':
                self._heard = time.monotonic()
                self._heartbeat = dict(data)
            elif message.topic == '_consumer' and isinstance(data, dict):
                key = (str(data.get('host')), int(data.get('pid') or 0))
                if data.get('stopping'):
                    self._consumers.pop(key, None)
                elif key in self._consumers or len(self._consumers) < MAX_CONSUMERS:
                    self._consumers[key] = (time.monotonic(), dict(data))

    def _run(self) -> None:
        context = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        apply_client(sub, self._curve)
        for topic in (b'_heartbeat', b'_consumer'):
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        sub.connect(self.endpoint)
        control = ControlClient(context, self.control, self._curve, 1.0)
        next_stats = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_stats:
                    self._refresh_stats(control)
                    next_stats = time.monotonic() + STATS_INTERVAL
                if sub.poll(200):
                    self._receive(sub)
        finally:
            sub.close(0)
            control.close()
            context.term()

    def _receive(self, sub: zmq.Socket) -> None:
        frames = sub.recv_multipart()
        try:
            message = wire.decode_message(frames)
        except WireError as exc:
            logger.warning('dropped a malformed meta message: %s', exc)
            return
        if isinstance(message, wire.MetaMessage):
            self.take(message)

    def _refresh_stats(self, control: ControlClient) -> None:
        try:
            stats = control.stats()
        except (BusError, TimeoutError, WireError):
            stats = None
        with self._lock:
            self._stats = stats
