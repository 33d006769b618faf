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

import msgpack
import zmq

from . import wire
from .admission import PUBLISH_ZAP_DOMAIN, ZAP_DOMAIN, Admission
from .config import BrokerConfig
from .exceptions import BusConfigError, WireError
from .keys import apply_server, load_keypair
from .ordering import Loss, Pending, PublisherTable, Released, Sequencer
from .ring import Ring

logger = logging.getLogger('signal_bus.broker')

_INGEST_BATCH = 1000
#: Ingest messages queued in the broker per publisher connection.
_INGEST_QUEUE = 100
#: Topic frames kept for reuse; cleared when full (task names are few in practice).
_TOPIC_CACHE = 10_000
#: A plain int: pyzmq's enum flags cost an enum operation per frame sent.
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_STOP_CHECK_MS = 50
#: A replay page holds at most this many bytes of events (and MAX_REPLAY_LIMIT events).
MAX_PAGE_BYTES = 4 * 1024 * 1024
#: Each control client's send queue holds three whole pages (events and end). One is not
#: enough: libzmq learns what the peer's side has read only every half queue, so a client
#: reading page after page would find the next page cut short by a queue still "full".
_CONTROL_PAGES_QUEUED = 3
_CONTROL_HWM = _CONTROL_PAGES_QUEUED * (wire.MAX_REPLAY_LIMIT + 2)
#: Requests queued per control client (each at most 1 MiB) before libzmq stops reading it.
_CONTROL_REQUEST_HWM = 16
_CONTROL_BATCH = 100
#: Larger reply bodies are sent without a copy: the queued message shares the ring's bytes.
_ZERO_COPY_BYTES = 16 * 1024
#: A longer subscription (1 byte of command + the prefix) drops its peer.
MAX_SUBSCRIPTION_BYTES = 1024
_SUBSCRIPTION_BATCH = 1000
#: New subscriptions are welcomed by one heartbeat at most this often (seconds).
_WELCOME_INTERVAL = 0.010


# pyzmq's Socket.send and recv_multipart wrap the compiled calls in Python (and ask the
# socket RCVMORE, through an enum, after every frame): on the per-event path the
# compiled calls are taken directly, a frame knowing itself whether more follow.
_send_frame = zmq.backend.Socket.send
_recv_frame = zmq.backend.Socket.recv


def _receive_message(sock: zmq.Socket) -> list[bytes] | None:
    """The next whole message waiting on ``sock`` (None when there is none)."""
    try:
        frame = _recv_frame(sock, _NOBLOCK, False)
    except zmq.Again:
        return None
    frames = [frame.bytes]
    while frame.more:  # the rest of a message is always there (libzmq delivers it whole)
        frame = _recv_frame(sock, 0, False)
        frames.append(frame.bytes)
    return frames


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
    consumer_meta: int = 0
    ingest_messages: int = 0
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
        self._ring: Ring[tuple[bytes, bytes, bytes]] = Ring(self.config.ring,
                                                            self.config.ring_bytes)
        self._subscriptions = 0
        self._admission = Admission(self.config.max_subscribers)
        self._welcome_at: float | None = None
        self._last_beat = float('-inf')
        self._topics: dict[tuple[str, str], bytes] = {}
        self._bodies = wire.BodyChecker()
        self._pack_meta = msgpack.Packer().pack

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
        admission = self._admission
        try:
            keys = self.config.curve_authorized_keys or None
            if keys is not None and not os.path.isdir(keys):
                raise BusConfigError('--curve-authorized-keys %s is not a directory of '
                                     'client *.key files' % keys)
            admission.start(context, keys)
            sockets = self._bind(context)
            try:
                admission.watch(sockets.publish)
                logger.info('signal broker epoch %d: ingest %s, publish %s, control %s; %s',
                            self.epoch, *self.endpoints, self._security())
                self._bound.set()
                self._loop(sockets)
            finally:
                for sock in sockets:
                    sock.close(linger=0)
        finally:
            self._endpoints = None
            admission.stop()
            context.term()

    def _security(self) -> str:
        """How the broker's sockets are secured, for its start line."""
        if not self.config.curve_secret_key:
            return 'CURVE off (plain text: bind loopback or a trusted network only)'
        if self.config.curve_authorized_keys:
            return 'CURVE on, clients limited to the keys in %s' % (
                self.config.curve_authorized_keys,)
        return 'CURVE on (encrypted), any client key accepted'

    def _bind(self, context: zmq.Context) -> _Sockets:
        keypair = (load_keypair(self.config.curve_secret_key)
                   if self.config.curve_secret_key else None)
        made: list[zmq.Socket] = []
        try:
            ingest = self._socket(context, zmq.PULL, keypair, made)
            # No frame of a valid event is larger than a whole event: libzmq drops the
            # sender of one before the broker holds it. Few messages queue per publisher
            # (a batch is up to 64 events): the rest wait in the publishers' own queues.
            ingest.maxmsgsize = self.config.max_event_bytes
            ingest.rcvhwm = _INGEST_QUEUE
            publish = self._socket(context, zmq.XPUB, keypair, made)
            publish.setsockopt(zmq.XPUB_VERBOSE, 1)
            publish.sndhwm = self.config.subscriber_hwm
            publish.maxmsgsize = 1 + MAX_SUBSCRIPTION_BYTES
            # Its own domain, always: NULL handshakes consult ZAP too (the subscriber cap).
            publish.zap_domain = PUBLISH_ZAP_DOMAIN.encode()
            control = self._socket(context, zmq.ROUTER, keypair, made)
            control.sndhwm = _CONTROL_HWM
            control.rcvhwm = _CONTROL_REQUEST_HWM
            control.copy_threshold = _ZERO_COPY_BYTES
            control.maxmsgsize = 1024 * 1024
            for sock, endpoint in zip(made, (self.config.ingest, self.config.publish,
                                             self.config.control)):
                sock.bind(endpoint)
        except BaseException:
            for sock in made:
                sock.close(linger=0)
            raise
        self._endpoints = BrokerEndpoints(*(sock.getsockopt_string(zmq.LAST_ENDPOINT)
                                            for sock in made))
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
                self._beat(sockets.publish, now)
                next_beat = now + self.config.heartbeat_interval
            elif self._welcome_at is not None and now >= self._welcome_at:
                self._beat(sockets.publish, now)
            self._publish_all(sockets.publish, self._sequencer.expire(now))
            due = min(next_beat, self._sequencer.next_deadline() or next_beat)
            if self._welcome_at is not None:
                due = min(due, self._welcome_at)
            ready = dict(poller.poll(int(max(0, min((due - now) * 1000, _STOP_CHECK_MS)))))
            if sockets.ingest in ready:
                self._drain_ingest(sockets)
            if sockets.publish in ready:
                self._drain_subscriptions(sockets.publish)
            if sockets.control in ready:
                self._drain_control(sockets.control)

    def _drain_ingest(self, sockets: _Sockets) -> None:
        ingest, publish = sockets.ingest, sockets.publish
        for _ in range(_INGEST_BATCH):
            frames = _receive_message(ingest)
            if frames is None:
                return
            self.counters.ingest_messages += 1
            try:
                self._ingest(frames, publish)
            except Exception:  # a bug must cost one message, never the broker
                self.counters.internal_errors += 1
                logger.exception('internal error while handling an ingest message; '
                                 'it was dropped')

    def _ingest(self, frames: list[bytes], publish: zmq.Socket) -> None:
        """One ingest message: k ``[header, body]`` pairs (1 <= k <= 64), or a one-frame
        ``_consumer`` map; anything else is one malformed message."""
        count = len(frames)
        if count == 2:
            self._ingest_event(frames[0], frames[1], publish)
        elif count == 1:
            self._ingest_consumer(frames[0], publish)
        elif count % 2 == 0 and count <= 2 * wire.MAX_BATCH_EVENTS:
            for index in range(0, count, 2):
                self._ingest_event(frames[index], frames[index + 1], publish)
        else:
            self.counters.received += 1
            self.counters.malformed += 1
            logger.debug('dropped a message of %d frames (an event is 2 frames, a batch '
                         'up to %d pairs)', count, wire.MAX_BATCH_EVENTS)

    def _ingest_event(self, header_frame: bytes, body: bytes, publish: zmq.Socket) -> None:
        counters = self.counters
        counters.received += 1
        if len(header_frame) + len(body) > self.config.max_event_bytes:
            counters.oversized += 1
            logger.debug('dropped an event of %d bytes (max %d)',
                         len(header_frame) + len(body), self.config.max_event_bytes)
            return
        try:
            header = wire.decode_header_fast(header_frame)
            final = self._bodies.check(body)
            if header.pub not in self._publishers:
                loss = self._publishers.observe(header, wire.check_body(body))
            else:
                loss = self._publishers.observe(header, None)
        except WireError as exc:
            counters.malformed += 1
            logger.debug('dropped a malformed event: %s', exc)
            return
        if loss is not None:
            self._report_loss(publish, loss)
        now = self._clock()
        self._publish_all(publish, self._sequencer.push(Pending(header, body, final, now), now))

    def _ingest_consumer(self, frame: bytes, publish: zmq.Socket) -> None:
        """A consumer's ``_consumer`` map: fanned out as a meta message, neither numbered
        nor ordered (SPEC §7); anything else in one frame is malformed."""
        try:
            wire.decode_consumer_meta(frame)
        except WireError as exc:
            self.counters.received += 1
            self.counters.malformed += 1
            logger.debug('dropped a one-frame message that is no _consumer map: %s', exc)
            return
        self.counters.consumer_meta += 1
        self._send(publish, [wire.CONSUMER_TOPIC, frame])

    def _publish_all(self, publish: zmq.Socket, released: list[Released]) -> None:
        for event, gap in released:
            self._publish(publish, event, gap)

    def _publish(self, publish: zmq.Socket, event: Pending, gap: bool) -> None:
        counters = self.counters
        header = event.header
        signal = header.signal
        by_signal = counters.by_signal
        sseq = by_signal.get(signal, 0) + 1
        by_signal[signal] = sseq
        counters.published += 1
        ring = self._ring
        seq = ring.last_seq + 1
        key = (signal, header.task_name)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topic_for(key)
        if gap:
            counters.gaps += 1
            meta = wire.encode_meta_fields(seq, sseq, self.epoch, True)
        else:
            meta = self._pack_meta({'seq': seq, 'sseq': sseq, 'epoch': self.epoch})
        body = event.body
        ring.append(seq, (topic, meta, body), len(topic) + len(meta) + len(body))
        try:
            _send_frame(publish, topic, _NOBLOCK_MORE)
            _send_frame(publish, meta, _NOBLOCK_MORE)
            _send_frame(publish, body, _NOBLOCK)
        except zmq.Again:
            pass

    def _topic_for(self, key: tuple[str, str]) -> bytes:
        topics = self._topics
        if len(topics) >= _TOPIC_CACHE:
            topics.clear()
        topic = topics[key] = wire.topic_for(*key)
        return topic

    @staticmethod
    def _send(sock: zmq.Socket, frames: list[bytes]) -> bool:
        # Frame by frame costs half a send_multipart; once the first frame is accepted
        # the rest of the message always is.
        try:
            for frame in frames[:-1]:
                _send_frame(sock, frame, _NOBLOCK_MORE)
            _send_frame(sock, frames[-1], _NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _report_loss(self, publish: zmq.Socket, loss: Loss) -> None:
        self.counters.publisher_drops += loss.events
        logger.info('publisher %d (host %s, pid %s) lost %d events (pseq %d..%d)',
                    loss.pub, loss.host, loss.pid, loss.events, loss.first_pseq,
                    loss.last_pseq)
        self._send(publish, wire.encode_loss(*loss))

    def _send_heartbeat(self, publish: zmq.Socket) -> None:
        self._send(publish, wire.encode_heartbeat(self.epoch, self._ring.last_seq,
                                                  self.counters.by_signal, self._wall(),
                                                  batch=True))

    def _beat(self, publish: zmq.Socket, now: float) -> None:
        """A heartbeat: the one of every second, or the welcome of new subscriptions."""
        self._welcome_at = None
        self._last_beat = now
        try:
            self._send_heartbeat(publish)
        except Exception:  # a bug must cost one heartbeat, never the broker
            self.counters.internal_errors += 1
            logger.exception('internal error while sending a heartbeat')
        self._drain_monitor()

    def _drain_subscriptions(self, publish: zmq.Socket) -> None:
        # However many subscriptions arrive, one welcome heartbeat per _WELCOME_INTERVAL.
        for _ in range(_SUBSCRIPTION_BATCH):
            try:
                message = publish.recv(_NOBLOCK)
                if message[:1] == b'\x01':
                    self._subscriptions += 1
                    if self._welcome_at is None:
                        self._welcome_at = max(self._clock(),
                                               self._last_beat + _WELCOME_INTERVAL)
                elif message[:1] == b'\x00':
                    self._subscriptions -= 1
            except zmq.Again:
                return
            except Exception:  # a bug must cost one subscription message, never the broker
                self.counters.internal_errors += 1
                logger.exception('internal error while reading a subscription')

    def _drain_monitor(self) -> None:
        try:
            self._admission.drain_monitor()
        except Exception:  # a bug must cost one count, never the broker
            self.counters.internal_errors += 1
            logger.exception('internal error while reading the publish socket monitor')

    # -- control -------------------------------------------------------------------------

    def _drain_control(self, control: zmq.Socket) -> None:
        for _ in range(_CONTROL_BATCH):
            try:
                frames = control.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            envelope = frames[:-1]
            try:
                replies = self._answer(frames[-1])
            except Exception as exc:  # a bug must cost one request, never the broker
                self.counters.internal_errors += 1
                logger.exception('internal error while answering a control request')
                replies = [wire.encode_error_reply('internal error: %s' % (exc,))]
            for reply in replies:
                if not self._send_reply(control, envelope, reply):
                    break

    @staticmethod
    def _send_reply(control: zmq.Socket, envelope: list[bytes], reply: list[bytes]) -> bool:
        frames = envelope + reply
        last = frames[-1]
        try:
            for frame in frames[:-1]:
                control.send(frame, _NOBLOCK_MORE)
            control.send(last, _NOBLOCK, copy=len(last) < _ZERO_COPY_BYTES)
            return True
        except zmq.Again:
            return False

    def _answer(self, frame: bytes) -> list[list[bytes]]:
        if len(frame) > wire.MAX_REQUEST_BYTES:
            self.counters.control_errors += 1
            return [wire.encode_error_reply(
                'a control request is at most 64 KiB, got %d bytes' % len(frame))]
        try:
            request = wire.decode_request(frame)
        except WireError as exc:
            self.counters.control_errors += 1
            return [wire.encode_error_reply(str(exc))]
        if not isinstance(request, wire.ReplayRequest):  # the only other op: stats
            self._drain_monitor()
            return [wire.encode_stats_reply(self.stats())]
        page = self._ring.page(request.from_seq, request.to_seq, request.limit,
                               MAX_PAGE_BYTES)
        replies = [wire.encode_replay_event(*entry) for entry in page.entries]
        replies.append(wire.encode_replay_end(
            request.from_seq, page.next_seq, page.missing, to=page.to_seq,
            last_seq=self._ring.last_seq, ring_first_seq=self._ring.first_seq,
            epoch=self.epoch))
        return replies

    def stats(self) -> dict[str, Any]:
        """Counters and state, as the control socket's ``stats`` reply carries them; every
        count saturates at 2**64-1 rather than overflow the wire."""
        return wire.saturate(self._raw_stats())

    def _raw_stats(self) -> dict[str, Any]:
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
            'ring_bytes': self._ring.bytes, 'ring_bytes_capacity': self.config.ring_bytes,
            'subscribers': self._admission.subscribers,
            'subscribers_refused': self._admission.refused,
            'held': self._sequencer.held, 'tasks_tracked': self._sequencer.tasks_tracked(),
            'publishers': len(self._publishers), 'subscriptions': self._subscriptions,
            'consumer_meta': counters.consumer_meta, 'batch': True,
            'ingest_messages': counters.ingest_messages,
        }


def run_broker(config: BrokerConfig | None = None) -> None:
    """Run a broker in the calling thread until it is interrupted (Ctrl-C)."""
    broker = Broker(config)
    try:
        broker.run()
    except KeyboardInterrupt:
        pass
