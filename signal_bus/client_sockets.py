"""The sockets a bus client opens: the SUB on the broker's publish endpoint
(``open_subscription``) and the DEALER on its control endpoint (``ControlClient``:
``stats`` and paged ``replay``); their CURVE material comes from ``keys.client_keys``."""
from __future__ import annotations

from typing import Any, Iterator

import zmq

from . import wire
from .config import CurveClientKeys
from .exceptions import BusConfigError, BusError, WireError
from .handshake import watch_handshake
from .keys import apply_client


def open_subscription(context: zmq.Context, endpoint: str, signals: tuple[str, ...] | None,
                      curve: CurveClientKeys | None, rcvhwm: int | None) -> zmq.Socket:
    """A SUB socket connected to ``endpoint``, subscribed to ``signals`` (everything when
    None) and always to the meta topics, its handshake watched for a refusal."""
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if rcvhwm is not None:
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
    apply_client(sock, curve)
    watch_handshake(sock, endpoint, 'subscriber')
    prefixes = [b''] if signals is None else [
        wire.signal_prefix(signal) for signal in signals] + [wire.META_PREFIX]
    for prefix in prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, prefix)
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise BusConfigError('cannot connect to publish endpoint %r: %s; give an endpoint '
                             'like tcp://127.0.0.1:7558' % (endpoint, exc)) from None
    return sock


class ControlClient:
    """A DEALER on the broker's control socket: ``stats`` and paged ``replay``.

    Owned by the thread that receives; after a timeout the socket is rebuilt, so a late
    answer to an abandoned request can never be taken for the answer to a new one.
    """

    def __init__(self, context: zmq.Context, endpoint: str, curve: CurveClientKeys | None,
                 timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context
        self._curve = curve
        self._socket: zmq.Socket | None = None

    def _connected(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            apply_client(sock, self._curve)
            sock.connect(self.endpoint)
            self._socket = sock
        return self._socket

    def _receive_frames(self, timeout: float) -> list[bytes]:
        """The next reply message's frames: taken at once when one is queued (a replay
        page's common case, sparing a poll per event), else waited for up to ``timeout``."""
        sock = self._connected()
        try:
            frame = sock.recv(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            if not sock.poll(int(timeout * 1000)):
                self.close()
                raise TimeoutError('the broker control socket %s did not answer within '
                                   '%.1fs' % (self.endpoint, timeout)) from None
            frame = sock.recv(copy=False)
        # Frame by frame: a frame knows whether more follow (no RCVMORE query per frame).
        frames = [frame.bytes]
        while frame.more:
            frame = sock.recv(copy=False)
            frames.append(frame.bytes)
        while len(frames) > 1 and frames[0] == b'':
            frames = frames[1:]  # tolerate a REQ-style empty delimiter
        return frames

    def _receive(self, timeout: float) -> wire.ControlReply:
        return wire.decode_control_reply(self._receive_frames(timeout))

    def stats(self, timeout: float | None = None) -> dict[str, Any]:
        """The broker's stats map."""
        self._connected().send(wire.encode_stats_request())
        reply = self._receive(self.timeout if timeout is None else timeout)
        if reply.kind != 'stats':
            raise BusError('the broker answered stats with %r: %s' % (reply.kind, reply.data))
        return reply.data

    def replay(self, first_seq: int, last_seq: int) -> Iterator[wire.EventMessage]:
        """The ring's events from ``first_seq`` to ``last_seq`` (inclusive), page by page.

        Each event is checked as the live stream is (its topic once per topic, its meta,
        its body a map); ``WireError`` for one that is not."""
        start, routes = first_seq, _Routes()
        while start <= last_seq:
            self._connected().send(wire.encode_replay_request(start, last_seq,
                                                              wire.MAX_REPLAY_LIMIT))
            while True:
                frames = self._receive_frames(self.timeout)
                if len(frames) == 4 and frames[0] == wire.REPLY_EVENT:
                    yield routes.event(frames)
                    continue
                reply = wire.decode_control_reply(frames)
                if reply.kind == 'event' and reply.event is not None:
                    yield reply.event
                elif reply.kind == 'end':
                    break
                else:
                    raise BusError('the broker refused a replay of %d..%d: %s'
                                   % (start, last_seq, reply.data))
            following = int(reply.data['next'])
            if following <= start:
                return
            start = following

    def close(self) -> None:
        """Drop the socket (a new one is made on the next request)."""
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None


class _Routes:
    """Replayed event frames to ``EventMessage``: each topic parsed once, the meta and the
    body checked as a subscriber checks the live stream's."""

    def __init__(self) -> None:
        self._topics: dict[bytes, tuple[str, str]] = {}

    def event(self, frames: list[bytes]) -> wire.EventMessage:
        """The event of a ``[b"event", topic, meta, body]`` reply (``WireError`` if bad)."""
        topic, meta, body = frames[1], frames[2], frames[3]
        route = self._topics.get(topic)
        if route is None:
            if topic[:1] == wire.META_PREFIX:
                raise WireError('replayed message is not an event')
            route = wire.parse_topic(topic)
            if len(self._topics) < 10_000:
                self._topics[topic] = route
        if not wire.is_map_frame(body):
            raise WireError('event body must be a msgpack map')
        return wire.EventMessage(route[0], route[1],
                                 wire.EventMeta(*wire.decode_meta_fields(meta)), body)
