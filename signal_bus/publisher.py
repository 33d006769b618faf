"""The publisher: hands events to the broker without ever blocking or raising.

``publish()`` takes the next ``pseq``, encodes the two frames, and appends them to a
bounded in-process buffer; one sender thread per process owns the PUSH socket and drains
the buffer with non-blocking sends. A full buffer or a full socket queue drops the event
and counts it; because its ``pseq`` was taken, the broker sees the hole and reports it.
After ``fork`` the child gets a new ``pub`` id, a new buffer, socket and thread, built
lazily on its first ``publish``.
"""
from __future__ import annotations

import atexit
import dataclasses
import itertools
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from typing import Any

import zmq

from . import event as event_module
from . import wire
from .config import DEFAULT_INGEST, BusConfig
from .keys import apply_client, client_keys

logger = logging.getLogger('signal_bus.publisher')

#: The most ``close()`` waits for buffered events to leave (SPEC §7).
CLOSE_LINGER = 1.0
#: What an unclosed publisher gets at interpreter exit (several of them add up).
EXIT_LINGER = 0.5
#: A plain int: pyzmq's enum flags cost an enum operation per frame sent.
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)


class _Channel:
    """One process's buffer, counters and sender thread for one publisher."""

    def __init__(self, config: BusConfig) -> None:
        self.config = config
        self.pub = int.from_bytes(os.urandom(8), 'big')
        self.pid = os.getpid()
        self.pseq = itertools.count(1)
        self.last_pseq = 0
        self.lock = threading.Lock()
        self.buffer: deque[tuple[bytes, bytes]] = deque()
        self.wake = threading.Event()
        self.closing = False
        self.close_deadline = 0.0
        self.counts = {'buffered': 0, 'sent': 0, 'dropped_buffer_full': 0,
                       'dropped_send': 0, 'errors': 0}
        self.thread = threading.Thread(target=self._run, name='signal-bus-publisher',
                                       daemon=True)
        self.thread.start()

    def offer(self, header: bytes, body: bytes) -> None:
        """Buffer one event (called with ``lock`` held, after ``pseq`` was taken)."""
        if len(self.buffer) >= self.config.buffer_size:
            self.counts['dropped_buffer_full'] += 1
            return
        self.buffer.append((header, body))
        self.counts['buffered'] += 1
        if not self.wake.is_set():
            self.wake.set()

    def close(self, timeout: float) -> None:
        """Let the sender flush for at most ``timeout`` seconds, then stop it."""
        self.close_deadline = time.monotonic() + timeout
        self.closing = True
        self.wake.set()
        self.thread.join(timeout + 0.5)

    def _run(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.PUSH)
        try:
            sock.sndhwm = self.config.send_hwm
            sock.linger = 0
            apply_client(sock, self.config.curve)
            sock.connect(self.config.ingest)
            self._pump(sock)
        except Exception:
            logger.exception('the bus publisher thread failed; events are no longer sent')
        finally:
            linger = max(0.0, self.close_deadline - time.monotonic()) if self.closing else 0
            sock.close(linger=int(min(linger, CLOSE_LINGER) * 1000))
            context.term()

    def _pump(self, sock: zmq.Socket) -> None:
        buffer, counts, send = self.buffer, self.counts, sock.send
        while True:
            self.wake.wait(1.0)
            self.wake.clear()
            while buffer:
                header, body = buffer.popleft()
                try:
                    # Two sends cost half a send_multipart; a message whose first frame
                    # was accepted is always accepted whole.
                    send(header, _NOBLOCK_MORE)
                    send(body, _NOBLOCK)
                    counts['sent'] += 1
                except zmq.Again:
                    counts['dropped_send'] += 1
            if self.closing:
                return


class Publisher:
    """Publishes queue signals to a broker's ingest endpoint; a queue signal sink.

    ``Publisher(endpoint)`` or ``Publisher(BusConfig(...))``; with CURVE give the broker's
    public key (file or Z85 text) and this client's ``.key_secret`` file.
    """

    def __init__(self, endpoint: str | BusConfig = DEFAULT_INGEST, *,
                 curve_server_key: str | bytes | None = None,
                 curve_keypair: str | None = None) -> None:
        config = BusConfig.coerce(endpoint)
        curve = client_keys(curve_server_key, curve_keypair)
        if curve is not None:
            config = dataclasses.replace(config, curve=curve)
        self.config = config
        self.host = socket.gethostname()
        self._channel: _Channel | None = None
        self._pid = -1
        self._build_lock = threading.Lock()
        self._lock_pid = os.getpid()
        self._closed = False
        # Parent-process channels inherited through fork are kept, never touched or freed:
        # freeing their ZeroMQ objects in the child could disturb the parent's.
        self._inherited: list[_Channel] = []

    @classmethod
    def from_config(cls, value: str | BusConfig) -> 'Publisher':
        """A publisher from an ingest endpoint string or a ``BusConfig``."""
        return cls(value)

    @property
    def pub(self) -> int:
        """This process's publisher id (random 64-bit, new in every process)."""
        return self._ensure_channel().pub

    def publish(self, signal: str, task: Any, exc: BaseException | None = None,
                source: str = 'app') -> None:
        """Send one event; never blocks, never raises (failures are counted and logged)."""
        try:
            if self._closed:
                return
            channel = self._channel if self._pid == os.getpid() else self._ensure_channel()
            if not wire.is_signal(signal):
                raise ValueError('unknown signal %r' % (signal,))
            body = event_module.encode_body(event_module.build_body(
                signal, task, exc, source, host=self.host, pid=channel.pid))
            name = event_module.task_name_of(task)
            tseq = event_module.event_tseq(task, source)
            with channel.lock:
                pseq = next(channel.pseq)
                channel.last_pseq = pseq
                channel.offer(wire.encode_header(signal, name, str(task.id), tseq,
                                                 channel.pub, pseq), body)
        except Exception:
            self._count_error()

    def __call__(self, signal: str, task: Any, exc: BaseException | None = None,
                 source: str = 'app') -> None:
        """The signal-sink form of ``publish``."""
        self.publish(signal, task, exc, source)

    def _count_error(self) -> None:
        channel = self._channel
        errors = 1
        if channel is not None and self._pid == os.getpid():
            channel.counts['errors'] += 1
            errors = channel.counts['errors']
        if errors == 1 or errors % 1000 == 0:  # a steady fault must not flood the log
            logger.warning('could not publish an event to the bus (%d so far)', errors,
                           exc_info=True)

    def _ensure_channel(self) -> _Channel:
        if self._lock_pid != os.getpid():
            # A forked child: the parent's lock may have been held at the fork.
            self._build_lock = threading.Lock()
            self._lock_pid = os.getpid()
        with self._build_lock:
            if self._channel is not None and self._pid == os.getpid():
                return self._channel
            if self._channel is not None:
                self._inherited.append(self._channel)
            self._channel = _Channel(self.config)
            self._pid = os.getpid()
            atexit.register(_close_at_exit, weakref.ref(self), self._pid)
            return self._channel

    def stats(self) -> dict[str, Any]:
        """This process's counters: ``pub``, ``pseq``, ``buffered``, ``sent``, drops, ``errors``,
        ``pending`` (still in the buffer) and ``dropped`` (both kinds of drop)."""
        channel = self._channel if self._pid == os.getpid() else None
        if channel is None:
            return {'pub': None, 'pseq': 0, 'buffered': 0, 'sent': 0,
                    'dropped_buffer_full': 0, 'dropped_send': 0, 'errors': 0,
                    'pending': 0, 'dropped': 0}
        counts = dict(channel.counts)
        counts.update(pub=channel.pub, pseq=channel.last_pseq, pending=len(channel.buffer),
                      dropped=counts['dropped_buffer_full'] + counts['dropped_send'])
        return counts

    def close(self, timeout: float = CLOSE_LINGER) -> None:
        """Flush what is buffered for at most ``timeout`` (max 1 s) and stop the sender."""
        self._closed = True
        channel = self._channel if self._pid == os.getpid() else None
        if channel is not None and not channel.closing:
            channel.close(min(timeout, CLOSE_LINGER))

    def __enter__(self) -> 'Publisher':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _close_at_exit(ref: 'weakref.ref[Publisher]', pid: int) -> None:
    publisher = ref()
    if publisher is not None and os.getpid() == pid:
        publisher.close(EXIT_LINGER)
