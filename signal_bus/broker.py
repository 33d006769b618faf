"""The signal broker: ingest events, order and number them, fan them out, keep a ring.

One thread owns all of the broker's sockets: ``run()`` is that thread's loop. ``start()``
runs it in a background thread (tests, or a consumer hosting a broker) and returns once
the sockets are bound; ``stop()`` ends it. ``run_broker(config)`` blocks in the caller.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable, NamedTuple

import zmq
from zmq.auth.thread import ThreadAuthenticator

from . import wire
from .config import ZMQ_MAX_MESSAGE_BYTES, BrokerConfig
from .exceptions import BusConfigError, WireError
from .keys import apply_server, load_keypair
from .ordering import Loss, Pending, PublisherTable, Released, Sequencer
from .ring import Ring

logger = logging.getLogger('signal_bus.broker')

_INGEST_BATCH = 1000
#: A plain int: pyzmq's enum flags cost an enum operation per frame sent.
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_STOP_CHECK_MS = 50
_CONTROL_HWM = 4 * wire.MAX_REPLAY_LIMIT
ZAP_DOMAIN = 'signal-bus'


class BrokerEndpoints(NamedTuple):
    """The endpoints a running broker is bound to (wildcard ports resolved)."""

    ingest: str
    publish: str
    control: str


@dataclasses.dataclass
class BrokerCounters:
    """What ``stats`` reports; only the broker thread writes these."""

    received: int = 0
    published: int = 0
    malformed: int = 0
    oversized: int = 0
    publisher_drops: int = 0
    gaps: int = 0
    control_errors: int = 0
    internal_errors: int = 0
    by_signal: dict[str, int] = dataclasses.field(default_factory=dict)


class _Sockets(NamedTuple):
    ingest: zmq.Socket
    publish: zmq.Socket
    control: zmq.Socket


class Broker:
    """A signal broker built from a ``BrokerConfig`` (defaults: loopback, SPEC §6)."""

    def __init__(self, config: BrokerConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.config = config or BrokerConfig()
        self._clock = clock
        self._wall = wall_clock
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._endpoints: BrokerEndpoints | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.epoch = int.from_bytes(os.urandom(8), 'big')
        self.counters = BrokerCounters()
        self._sequencer = Sequencer(self.config.hold_ms / 1000.0, self.config.max_tasks)
        self._publishers = PublisherTable(self.config.max_publishers)
        self._ring: Ring[tuple[bytes, bytes, bytes]] = Ring(self.config.ring)
        self._subscriptions = 0

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def endpoints(self) -> BrokerEndpoints:
        """The bound endpoints; only valid once the broker is running."""
        if self._endpoints is None:
            raise RuntimeError('the broker is not running: call start() or run() first')
        return self._endpoints

    def bound_config(self) -> BrokerConfig:
        """This broker's config with the bound endpoints in place of wildcard ports, to
        start a broker again on the same ports (a restart) or to derive client configs."""
        return dataclasses.replace(self.config, **self.endpoints._asdict())

    def start(self, timeout: float = 10.0) -> 'Broker':
        """Run the broker in a background thread; return once its sockets are bound."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError('this broker is already running')
        self._stop.clear()
        self._bound.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run_in_thread, name='signal-broker',
                                        daemon=True)
        self._thread.start()
        if not self._bound.wait(timeout) or self._error is not None:
            self.stop()
            raise self._error or RuntimeError('the broker did not bind within %ss' % timeout)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end and wait (up to ``timeout``) for its thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run_in_thread(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # handed to start(), which re-raises it
            self._error = exc
            self._bound.set()

    def run(self) -> None:
        """Bind, then serve in this thread until ``stop()`` (from a signal handler or
        another thread); every socket is owned by this thread."""
        self._stop.clear()
        self._serve()

    def _serve(self) -> None:
        self._reset_state()
        context = zmq.Context()
        auth = None
        try:
            auth = self._start_authenticator(context)
            sockets = self._bind(context)
            try:
                logger.info('signal broker epoch %d: ingest %s, publish %s, control %s',
                            self.epoch, *self._endpoints)
                self._bound.set()
                self._loop(sockets)
            finally:
                for sock in sockets:
                    sock.close(linger=0)
        finally:
            self._endpoints = None
            if auth is not None:
                auth.stop()
            context.term()

    def _start_authenticator(self, context: zmq.Context) -> ThreadAuthenticator | None:
        if not self.config.curve_authorized_keys:
            return None
        if not os.path.isdir(self.config.curve_authorized_keys):
            raise BusConfigError('--curve-authorized-keys %s is not a directory of client '
                                 '*.key files' % self.config.curve_authorized_keys)
        auth = ThreadAuthenticator(context, log=logging.getLogger('signal_bus.broker.auth'))
        auth.start()
        auth.configure_curve(domain=ZAP_DOMAIN, location=self.config.curve_authorized_keys)
        return auth

    def _bind(self, context: zmq.Context) -> _Sockets:
        keypair = (load_keypair(self.config.curve_secret_key)
                   if self.config.curve_secret_key else None)
        made: list[zmq.Socket] = []
        try:
            ingest = self._socket(context, zmq.PULL, keypair, made)
            ingest.maxmsgsize = ZMQ_MAX_MESSAGE_BYTES
            publish = self._socket(context, zmq.XPUB, keypair, made)
            publish.setsockopt(zmq.XPUB_VERBOSE, 1)
            publish.sndhwm = self.config.publish_hwm
            control = self._socket(context, zmq.ROUTER, keypair, made)
            control.sndhwm = _CONTROL_HWM
            control.maxmsgsize = 1024 * 1024
            for sock, endpoint in zip(made, (self.config.ingest, self.config.publish,
                                             self.config.control)):
                sock.bind(endpoint)
        except BaseException:
            for sock in made:
                sock.close(linger=0)
            raise
        self._endpoints = BrokerEndpoints(*(sock.last_endpoint.decode() for sock in made))
        return _Sockets(ingest, publish, control)

    @staticmethod
    def _socket(context: zmq.Context, kind: int, keypair: tuple[bytes, bytes] | None,
                made: list[zmq.Socket]) -> zmq.Socket:
        sock = context.socket(kind)
        made.append(sock)
        sock.linger = 0
        if keypair is not None:
            sock.zap_domain = ZAP_DOMAIN.encode()
        apply_server(sock, keypair)
        return sock

    # -- the loop ------------------------------------------------------------------------

    def _loop(self, sockets: _Sockets) -> None:
        poller = zmq.Poller()
        for sock in sockets:
            poller.register(sock, zmq.POLLIN)
        next_beat = self._clock()
        while not self._stop.is_set():
            now = self._clock()
            if now >= next_beat:
                self._send_heartbeat(sockets.publish)
                next_beat = now + self.config.heartbeat_interval
            self._publish_all(sockets.publish, self._sequencer.expire(now))
            timeout = min(next_beat, self._sequencer.next_deadline() or next_beat) - now
            ready = dict(poller.poll(max(0, min(timeout * 1000, _STOP_CHECK_MS))))
            if sockets.ingest in ready:
                self._drain_ingest(sockets)
            if sockets.publish in ready:
                self._drain_subscriptions(sockets.publish)
            if sockets.control in ready:
                self._drain_control(sockets.control)

    def _drain_ingest(self, sockets: _Sockets) -> None:
        for _ in range(_INGEST_BATCH):
            try:
                frames = sockets.ingest.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            try:
                self._ingest(frames, sockets.publish)
            except Exception:  # a bug must cost one event, never the broker
                self.counters.internal_errors += 1
                logger.exception('internal error while handling an event; it was dropped')

    def _ingest(self, frames: list[bytes], publish: zmq.Socket) -> None:
        counters = self.counters
        counters.received += 1
        if len(frames) != 2:
            counters.malformed += 1
            logger.debug('dropped a message of %d frames (an event has 2)', len(frames))
            return
        if len(frames[0]) + len(frames[1]) > self.config.max_event_bytes:
            counters.oversized += 1
            logger.debug('dropped an event of %d bytes (max %d)',
                         len(frames[0]) + len(frames[1]), self.config.max_event_bytes)
            return
        try:
            header = wire.decode_header(frames[0])
            info = wire.check_body(frames[1])
        except WireError as exc:
            counters.malformed += 1
            logger.debug('dropped a malformed event: %s', exc)
            return
        loss = self._publishers.observe(header, info)
        if loss is not None:
            self._report_loss(publish, loss)
        now = self._clock()
        self._publish_all(publish, self._sequencer.push(
            Pending(header, frames[1], info, now), now))

    def _publish_all(self, publish: zmq.Socket, released: list[Released]) -> None:
        for event, gap in released:
            self._publish(publish, event, gap)

    def _publish(self, publish: zmq.Socket, event: Pending, gap: bool) -> None:
        counters = self.counters
        signal = event.header.signal
        seq = self._ring.last_seq + 1
        sseq = counters.by_signal.get(signal, 0) + 1
        counters.by_signal[signal] = sseq
        counters.published += 1
        counters.gaps += gap
        topic = wire.topic_for(signal, event.header.task_name)
        meta = wire.encode_meta_fields(seq, sseq, self.epoch, gap)
        self._ring.append(seq, (topic, meta, event.body))
        self._send(publish, [topic, meta, event.body])

    @staticmethod
    def _send(sock: zmq.Socket, frames: list[bytes]) -> bool:
        # Frame by frame costs half a send_multipart; once the first frame is accepted
        # the rest of the message always is.
        try:
            for frame in frames[:-1]:
                sock.send(frame, _NOBLOCK_MORE)
            sock.send(frames[-1], _NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _report_loss(self, publish: zmq.Socket, loss: Loss) -> None:
        self.counters.publisher_drops += loss.count
        logger.info('publisher %d (host %s, pid %s) lost %d events (pseq %d..%d)',
                    loss.pub, loss.host, loss.pid, loss.count, loss.first_pseq,
                    loss.last_pseq)
        self._send(publish, wire.encode_loss(*loss))

    def _send_heartbeat(self, publish: zmq.Socket) -> None:
        self._send(publish, wire.encode_heartbeat(self.epoch, self._ring.last_seq,
                                                  self.counters.by_signal, self._wall()))

    def _drain_subscriptions(self, publish: zmq.Socket) -> None:
        while True:
            try:
                message = publish.recv(_NOBLOCK)
            except zmq.Again:
                return
            if message[:1] == b'\x01':
                self._subscriptions += 1
                self._send_heartbeat(publish)
            elif message[:1] == b'\x00':
                self._subscriptions -= 1

    # -- control -------------------------------------------------------------------------

    def _drain_control(self, control: zmq.Socket) -> None:
        while True:
            try:
                frames = control.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            envelope = frames[:-1]
            for reply in self._answer(frames[-1]):
                if not self._send(control, envelope + reply):
                    break

    def _answer(self, frame: bytes) -> list[list[bytes]]:
        try:
            request = wire.decode_request(frame)
        except WireError as exc:
            self.counters.control_errors += 1
            return [wire.encode_error_reply(str(exc))]
        if request == wire.OP_STATS:
            return [wire.encode_stats_reply(self.stats())]
        page = self._ring.page(request.from_seq, request.to_seq, request.limit)
        replies = [wire.encode_replay_event(*entry) for entry in page.entries]
        replies.append(wire.encode_replay_end(
            request.from_seq, page.next_seq, page.missing, to=page.to_seq,
            last_seq=self._ring.last_seq, ring_first_seq=self._ring.first_seq,
            epoch=self.epoch))
        return replies

    def stats(self) -> dict[str, Any]:
        """Counters and state, as the control socket's ``stats`` reply carries them."""
        counters = self.counters
        return {
            'v': wire.WIRE_VERSION, 'epoch': self.epoch,
            'received': counters.received, 'published': counters.published,
            'malformed': counters.malformed, 'oversized': counters.oversized,
            'publisher_drops': counters.publisher_drops, 'gaps': counters.gaps,
            'control_errors': counters.control_errors,
            'internal_errors': counters.internal_errors,
            'by_signal': dict(counters.by_signal),
            'last_seq': self._ring.last_seq, 'ring_first_seq': self._ring.first_seq,
            'ring_size': self._ring.size, 'ring_capacity': self._ring.capacity,
            'held': self._sequencer.held, 'tasks_tracked': self._sequencer.tasks_tracked(),
            'publishers': len(self._publishers), 'subscriptions': self._subscriptions,
        }


def run_broker(config: BrokerConfig | None = None) -> None:
    """Run a broker in the calling thread until it is interrupted (Ctrl-C)."""
    broker = Broker(config)
    try:
        broker.run()
    except KeyboardInterrupt:
        pass
