"""The publisher: hands events to the broker without ever blocking or raising.

``publish()`` takes the next ``pseq``, encodes the two frames and sends them without
blocking on a PUSH socket that the publishing thread owns (one socket per thread, each
with its own ``pub`` id and ``pseq``). The socket's send queue (``send_hwm`` messages) is
the bounded buffer, and ZeroMQ's own I/O thread drains it, outside Python's GIL: the
worker never hands events to another Python thread, so watching costs it only the
encoding and one queue append. A full queue drops the event and counts it; because its
``pseq`` was taken, the broker sees the hole and reports it. After ``fork`` the child
builds its own context and sockets on its first ``publish``.
"""
from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import os
import socket
import threading
import time
import weakref
from time import monotonic as _monotonic
from typing import Any

import msgpack
import zmq

from queue_core.signals import ALL_SIGNALS, SIGNAL_EXECUTING

from . import body as body_module
from . import wire
from .config import DEFAULT_INGEST, BusConfig
from .exceptions import BusConfigError, WireError
from .handshake import watch_handshake
from .keys import apply_client, client_keys

logger = logging.getLogger('signal_bus.publisher')

#: The most ``close()`` waits for queued events to leave (SPEC §7).
CLOSE_LINGER = 1.0
#: What an unclosed publisher gets at interpreter exit (several of them add up).
EXIT_LINGER = 0.5
#: A plain int: pyzmq's enum flags cost an enum operation per frame sent.
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_SNDMORE = int(zmq.SNDMORE)

_SIGNALS = frozenset(ALL_SIGNALS)
#: The longest a coalescing publisher holds an event back (DESIGN: at most 0.5 ms).
COALESCE_SECONDS = 0.0005
#: Gathered events are sent at 63, leaving room for a dropped one offered again: a batch
#: never passes the wire's 64.
_MAX_GATHERED_FRAMES = 2 * (wire.MAX_BATCH_EVENTS - 1)
#: pyzmq's Socket.send wraps the compiled call in Python (0.45 of its 0.65 us a frame).
_send_frame = zmq.backend.Socket.send

_COUNTS = ('buffered', 'sent', 'dropped_send', 'errors', 'messages')


class _Channel:
    """One thread's PUSH socket, with its own ``pub`` id, ``pseq`` and counters.

    A coalescing channel (``coalesce()``, what a consumer's worker asks for) gathers events
    and sends up to ``wire.MAX_BATCH_EVENTS`` of them as one ingest message, once its
    broker has said it takes batches. An event waits at most ``COALESCE_SECONDS``, checked
    at each publish; besides, the batch goes at once with an ``executing`` event (the
    task's own code runs next) unless the caller arms a timer for ``deadline()`` instead
    (``coalesce(deferred=True)``: a worker process's alarm), with any event published
    while a task runs (that code may run long), and at ``flush()``, which the worker
    calls before it blocks waiting for work, and at close.
    """

    def __init__(self, context: zmq.Context, config: BusConfig) -> None:
        self.pub = int.from_bytes(os.urandom(8), 'big')
        self.pid = os.getpid()
        self.pseq = 0
        self.counts = dict.fromkeys(_COUNTS, 0)
        self.closed = False
        self.config = config
        # The newest dropped event, sent again before the next one (or at close): once it
        # arrives, the broker sees every hole before it and reports the drops, so even a
        # publisher's last drops are reported as long as the broker takes events again.
        self.retry: tuple[bytes, bytes] | None = None
        self.batching = False
        self.pending: list[bytes] = []
        self.pending_since = 0.0
        self.running: str | None = None
        self.deferred = False
        self.busy = False
        self.probe: BatchProbe | None = None
        self.packer = msgpack.Packer(use_bin_type=True, default=body_module.plain_default).pack
        sock = context.socket(zmq.PUSH)
        sock.sndhwm = config.send_hwm
        sock.linger = 0
        apply_client(sock, config.curve)
        if config.curve is not None and config.watch_refusals:  # never publish into nothing silently
            watch_handshake(sock, config.ingest, 'publisher (pid %d)' % self.pid, logger)
        sock.connect(config.ingest)
        self.sock = sock
        self.context = context

    def coalesce(self, deferred: bool = False) -> None:
        """Gather events into batches from now on, once the broker announces them;
        ``deferred`` (it stays once asked): an ``executing`` event does not send the batch,
        the caller arms a timer for ``deadline()`` instead."""
        self.deferred = self.deferred or deferred
        if self.probe is None and not self.batching:
            self.probe = BatchProbe(self.context, self.config)

    def deadline(self) -> float | None:
        """When the oldest gathered event is due to leave (``time.monotonic``), or None."""
        return self.pending_since + COALESCE_SECONDS if self.pending else None

    def encode_body(self, body: dict[str, Any]) -> bytes:
        """The body map as plain msgpack (this channel's packer; ``event.encode_body`` for
        what it cannot pack and for arguments over 64 KiB)."""
        try:
            packed = self.packer(body)
        except Exception:
            return body_module.encode_body(body)
        if len(packed) > body_module.MAX_ARGUMENT_BYTES:
            return body_module.encode_body(body)
        return packed

    def send(self, signal: str, task_name: str, task_id: str, tseq: int | None,
             body: bytes) -> None:
        """Take the next ``pseq`` and queue the event, or drop and count it when full."""
        self.pseq += 1
        header = self.packer([1, signal, task_name, task_id, tseq, self.pub, self.pseq])
        if self.probe is not None:
            self._check_probe()
        if self.batching:
            self.busy = True  # a flush from a signal handler must not cut into this
            try:
                self._gather(signal, task_id, header, body)
            finally:
                self.busy = False
            return
        if self.retry is not None and self._queue(*self.retry, _NOBLOCK):
            self.retry = None
        if not self._queue(header, body, _NOBLOCK):
            self.retry = (header, body)

    def _gather(self, signal: str, task_id: str, header: bytes, body: bytes) -> None:
        pending = self.pending
        now = _monotonic()
        if not pending:
            self.pending_since = now
        pending.append(header)
        pending.append(body)
        if signal == SIGNAL_EXECUTING:
            self.running = task_id
            if not self.deferred:
                self.flush()
        elif self.running is not None and task_id != self.running:
            self.flush()
        else:
            self.running = None
            if (len(pending) >= _MAX_GATHERED_FRAMES
                    or now - self.pending_since >= COALESCE_SECONDS):
                self.flush()

    def flush(self) -> None:
        """Send what was gathered as one message (or drop and count it when full)."""
        if self.probe is not None:
            self._check_probe()
        pending = self.pending
        if not pending:
            return
        self.pending = []
        if self.retry is not None:
            pending[:0] = self.retry
        sock = self.sock
        try:
            # A message whose first frame was accepted is always accepted whole.
            _send_frame(sock, pending[0], _NOBLOCK_MORE)
            for frame in pending[1:-1]:
                _send_frame(sock, frame, _NOBLOCK_MORE)
            _send_frame(sock, pending[-1], _NOBLOCK)
        except zmq.Again:
            count = len(pending) // 2 - (self.retry is not None)
            self.counts['dropped_send'] += count
            self.retry = (pending[-2], pending[-1])
            return
        sent = len(pending) // 2
        self.counts['messages'] += 1
        if self.retry is not None:
            self.counts['dropped_send'] -= 1  # counted as dropped before; it went after all
            self.retry = None
        self.counts['buffered'] += sent
        self.counts['sent'] += sent

    def _check_probe(self) -> None:
        probe = self.probe
        assert probe is not None
        answer = probe.answer()
        if answer is not None:
            self.batching = answer
            probe.close()
            self.probe = None

    def _queue(self, header: bytes, body: bytes, flags: int) -> bool:
        """Queue one event's frames; count it as sent, or as dropped when the queue is full."""
        try:
            # A message whose first frame was accepted is always accepted whole.
            _send_frame(self.sock, header, flags | _SNDMORE)
            _send_frame(self.sock, body, flags)
        except zmq.Again:
            if (header, body) != self.retry:
                self.counts['dropped_send'] += 1
            return False
        if (header, body) == self.retry:
            self.counts['dropped_send'] -= 1  # it was counted as dropped; it went after all
        self.counts['messages'] += 1
        self.counts['buffered'] += 1
        self.counts['sent'] += 1
        return True

    def close(self, linger: float) -> None:
        """Close the socket, letting queued events leave for at most ``linger`` seconds;
        the newest dropped event is offered once more within that time."""
        if self.closed:
            return
        self.closed = True
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        if self.pending:
            self.flush()
        if self.retry is not None:
            self.sock.sndtimeo = int(linger * 1000)
            if self._queue(*self.retry, 0):
                self.retry = None
        self.sock.close(linger=int(linger * 1000))


class BatchProbe:
    """Asks the broker's control socket whether it takes ingest batches (``stats`` says
    ``batch: true``); read without blocking, by the thread that owns the channel."""

    def __init__(self, context: zmq.Context, config: BusConfig) -> None:
        self.sock = context.socket(zmq.DEALER)
        self.sock.linger = 0
        apply_client(self.sock, config.curve)
        try:
            self.sock.connect(config.control_endpoint)
            self.sock.send(wire.encode_stats_request(), _NOBLOCK)
        except (zmq.ZMQError, BusConfigError) as exc:
            logger.debug('no batch probe (%s): events go one by one', exc)

    def answer(self) -> bool | None:
        """True or False once the broker answered, None while it has not."""
        try:
            frames = self.sock.recv_multipart(_NOBLOCK)
        except zmq.Again:
            return None
        except zmq.ZMQError:
            return False
        try:
            reply = wire.decode_control_reply(frames)
        except WireError:
            return False
        return reply.kind == 'stats' and reply.data.get('batch') is True

    def close(self) -> None:
        """Close the probe's socket."""
        self.sock.close(linger=0)


class Publisher:
    """Publishes queue signals to a broker's ingest endpoint; a queue signal sink.

    ``Publisher(endpoint)`` or ``Publisher(BusConfig(...))``; with CURVE give the broker's
    public key (file or Z85 text) and this client's ``.key_secret`` file.
    """

    def __init__(self, endpoint: str | BusConfig = DEFAULT_INGEST, *,
                 curve_server_key: str | bytes | None = None,
                 curve_keypair: str | None = None, queue: str | None = None) -> None:
        config = BusConfig.coerce(endpoint)
        curve = client_keys(curve_server_key, curve_keypair)
        if curve is not None:
            config = dataclasses.replace(config, curve=curve)
        self.config = config
        #: The ``TaskQueue`` name events carry as ``queue`` (None: not sent).
        self.queue = queue
        self.host = socket.gethostname()
        self._local = threading.local()
        self._closed = False
        self._pid = -1
        self._context: zmq.Context | None = None
        # Weak: a finished thread's channel goes (and its socket closes) with the thread.
        self._channels: 'weakref.WeakSet[_Channel]' = weakref.WeakSet()
        self._counts_of_gone = dict.fromkeys(_COUNTS, 0)
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()
        # ZeroMQ objects inherited through fork are kept, never touched or freed: freeing
        # them in the child could disturb the parent's.
        self._inherited: list[Any] = []
        os.register_at_fork(after_in_child=functools.partial(_forget_channels_after_fork,
                                                             weakref.ref(self)))

    @classmethod
    def from_config(cls, value: str | BusConfig, queue: str | None = None) -> 'Publisher':
        """A publisher from an ingest endpoint string or a ``BusConfig``; ``queue`` names
        the queue its events come from."""
        return cls(value, queue=queue)

    @property
    def pub(self) -> int:
        """The calling thread's publisher id (random 64-bit, new in every thread and process)."""
        return self._channel().pub

    def publish(self, signal: str, task: Any, exc: BaseException | None = None,
                source: str = 'app') -> None:
        """Send one event; never blocks, never raises (failures are counted and logged)."""
        try:
            channel = getattr(self._local, 'channel', None)
            if channel is None or channel.closed:
                if self._closed:
                    return
                channel = self._new_channel()
            if signal not in _SIGNALS:
                raise ValueError('unknown signal %r' % (signal,))
            body = body_module.build_body(signal, task, exc, source, host=self.host,
                                           pid=channel.pid, queue=self.queue)
            channel.send(signal, body['task_name'], body['task_id'], body['tseq'],
                         channel.encode_body(body))
        except Exception:
            self._count_error()

    def __call__(self, signal: str, task: Any, exc: BaseException | None = None,
                 source: str = 'app') -> None:
        """The signal-sink form of ``publish``."""
        self.publish(signal, task, exc, source)

    def coalesce(self, deferred: bool = False) -> None:
        """Let the calling thread's events travel in batches (a consumer's worker asks for
        this; it then calls ``flush()`` before it blocks waiting for work). Takes effect
        once the broker announces batches. No event waits longer than 0.5 ms, but while
        the thread runs the queue's own code between two publishes; with ``deferred`` the
        caller promises a timer that calls ``flush()`` at ``deadline()`` while a task's
        own code runs (a worker process's alarm), so an ``executing`` event does not send
        the batch at once."""
        try:
            if not self._closed:
                self._channel().coalesce(deferred)
        except Exception:
            self._count_error()

    def wait_for_batches(self, timeout: float = 5.0) -> bool:
        """Wait (polling, at most ``timeout`` seconds) until the calling thread's channel,
        asked to ``coalesce()``, has the broker's answer to its batch probe; whether its
        events now travel in batches. A worker never needs this (the answer is read at its
        next publish); a benchmark wants its clock to start once batching is on."""
        deadline = time.monotonic() + timeout
        while True:
            self.flush()  # reads the probe's answer
            channel = getattr(self._local, 'channel', None)
            batching = bool(channel is not None and channel.batching)
            if batching or time.monotonic() >= deadline:
                return batching
            time.sleep(0.01)

    def deadline(self) -> float | None:
        """When the calling thread's oldest gathered event is due (``time.monotonic``),
        or None when it holds none."""
        channel = getattr(self._local, 'channel', None)
        return None if channel is None or channel.closed else channel.deadline()

    def flush(self) -> None:
        """Send at once what the calling thread's channel has gathered; never raises.
        Safe to call from a signal handler: it does nothing while the interrupted code
        is itself in the middle of a publish or flush (which sends soon anyway)."""
        channel = getattr(self._local, 'channel', None)
        if channel is None or channel.closed or channel.busy:
            return
        channel.busy = True
        try:
            channel.flush()
        except Exception:
            self._count_error()
        finally:
            channel.busy = False

    def _count_error(self) -> None:
        channel = getattr(self._local, 'channel', None)
        errors = 1
        if channel is not None and channel.pid == os.getpid():
            channel.counts['errors'] += 1
            errors = channel.counts['errors']
        if errors == 1 or errors % 1000 == 0:  # a steady fault must not flood the log
            logger.warning('could not publish an event to the bus (%d so far)', errors,
                           exc_info=True)

    def _channel(self) -> _Channel:
        """The calling thread's channel, built on first use in each thread and process
        (a forked child starts with no channel: see ``_forget_channels_after_fork``)."""
        channel = getattr(self._local, 'channel', None)
        if channel is not None and not channel.closed:
            return channel
        return self._new_channel()

    def _new_channel(self) -> _Channel:
        if self._lock_pid != os.getpid():
            # A forked child: the parent's lock may have been held at the fork.
            self._lock = threading.Lock()
            self._lock_pid = os.getpid()
        with self._lock:
            if self._pid != os.getpid():
                if self._context is not None:
                    self._inherited.append((self._context, list(self._channels)))
                self._context = zmq.Context()
                self._channels = weakref.WeakSet()
                self._counts_of_gone = dict.fromkeys(_COUNTS, 0)
                self._pid = os.getpid()
                atexit.register(_close_at_exit, weakref.ref(self), self._pid)
            assert self._context is not None  # made above in this process
            channel = _Channel(self._context, self.config)
            weakref.finalize(channel, _remember_counts, weakref.ref(self), channel.counts)
            self._channels.add(channel)
            self._local.channel = channel
            return channel

    def stats(self) -> dict[str, Any]:
        """This process's counters over all its threads: ``buffered`` (queued for the
        broker), ``sent``, ``dropped_send`` (queue full), ``errors``, ``dropped``,
        ``messages`` (ingest messages sent: fewer than events when batching); and the
        calling thread's ``pub``, ``pseq``, ``batching`` (its events travel in batches) and
        ``pending`` (events it gathered and has not sent yet). ``dropped_buffer_full``
        stays 0: the socket's own queue is the buffer."""
        counts = dict.fromkeys(_COUNTS, 0)
        channel = getattr(self._local, 'channel', None)
        if self._pid == os.getpid():
            with self._lock:
                sources = [c.counts for c in list(self._channels)] + [self._counts_of_gone]
            for source in sources:
                for key in _COUNTS:
                    counts[key] += source[key]
        # dropped_buffer_full: nothing buffers besides the socket, so it is always 0 (a
        # reported key, kept for compatibility).
        result: dict[str, Any] = dict(counts, dropped_buffer_full=0, pub=None, pseq=0,
                                      batching=False, pending=0,
                                      dropped=counts['dropped_send'])
        if channel is not None and channel.pid == os.getpid():
            result.update(pub=channel.pub, pseq=channel.pseq, batching=channel.batching,
                          pending=len(channel.pending) // 2)
        return result

    def close(self, timeout: float = CLOSE_LINGER) -> None:
        """Let queued events leave for at most ``timeout`` (max 1 s), then close."""
        self._closed = True
        if self._pid != os.getpid() or self._context is None:
            return
        linger = max(0.0, min(timeout, CLOSE_LINGER))
        with self._lock:
            channels = list(self._channels)
        for channel in channels:
            channel.close(linger)
        self._context.term()  # returns once queued events left, or the linger ran out

    def __enter__(self) -> 'Publisher':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _forget_channels_after_fork(ref: 'weakref.ref[Publisher]') -> None:
    """In a forked child, no thread has a channel yet: the next publish builds one (with
    its own context and ``pub``), so the per-event path never asks for the pid."""
    publisher = ref()
    if publisher is not None:
        publisher._local = threading.local()


def _remember_counts(ref: 'weakref.ref[Publisher]', counts: dict[str, int]) -> None:
    """Keep a finished thread's counts in its publisher's totals."""
    publisher = ref()
    if publisher is not None:
        for key in _COUNTS:
            publisher._counts_of_gone[key] += counts[key]


def _close_at_exit(ref: 'weakref.ref[Publisher]', pid: int) -> None:
    publisher = ref()
    if publisher is not None and os.getpid() == pid:
        publisher.close(EXIT_LINGER)
