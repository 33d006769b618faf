"""Plain pyzmq clients of the broker for tests, and a minimal task object.

These speak the wire format directly (as a client written from docs/bus-wire.md would),
so the broker is tested without the library's own subscriber.
"""
from __future__ import annotations

import itertools
import os
import time
import uuid
from typing import Any, NamedTuple

import msgpack
import zmq

from signal_bus import wire
from signal_bus.config import BrokerConfig

WILDCARD = 'tcp://127.0.0.1:*'


def loopback_broker_config(**options: Any) -> BrokerConfig:
    """A broker config on loopback wildcard ports (the bound ports are in ``endpoints``)."""
    for endpoint in ('ingest', 'publish', 'control'):
        options.setdefault(endpoint, WILDCARD)
    return BrokerConfig(**options)


class FakeTask:
    """The attributes a signal sink reads from a queue task (queue_core.task.Task)."""

    def __init__(self, name: str = 'app.tasks.add', *, id: str | None = None,
                 args: tuple = (), kwargs: dict | None = None, retries: int = 0,
                 tseq: int = 0, final: bool = False) -> None:
        self.id = id or str(uuid.uuid4())
        self.registry_name = name
        self.name = name.rsplit('.', 1)[-1]
        self.args = args
        self.kwargs = kwargs or {}
        self.retries = retries
        self.tseq = tseq
        self.final = final


class RawSubscriber:
    """A SUB socket on the broker's publish endpoint, decoding with ``signal_bus.wire``."""

    def __init__(self, context: zmq.Context, endpoint: str, prefixes: tuple = (b'',),
                 curve: Any = None) -> None:
        from signal_bus.keys import apply_client
        self.socket = context.socket(zmq.SUB)
        self.socket.linger = 0
        apply_client(self.socket, curve)
        for prefix in prefixes:
            self.socket.subscribe(prefix)
        self.socket.connect(endpoint)

    def recv(self, timeout: float = 10.0) -> wire.EventMessage | wire.MetaMessage | None:
        """The next message, or None when ``timeout`` passes first."""
        if not self.socket.poll(int(timeout * 1000)):
            return None
        return wire.decode_message(self.socket.recv_multipart())

    def wait_connected(self, timeout: float = 10.0) -> wire.MetaMessage:
        """Wait for the heartbeat the broker sends on every new subscription."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.recv(deadline - time.monotonic())
            if isinstance(message, wire.MetaMessage) and message.topic == '_heartbeat':
                return message
        raise AssertionError('no heartbeat from the broker within %ss' % timeout)

    def events(self, count: int, timeout: float = 10.0,
               metas: list | None = None) -> list[wire.EventMessage]:
        """The next ``count`` events (meta messages go to ``metas`` if given)."""
        found: list[wire.EventMessage] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            remaining = deadline - time.monotonic()
            message = self.recv(remaining) if remaining > 0 else None
            if message is None:
                raise AssertionError('got %d of %d events within %ss: %r'
                                     % (len(found), count, timeout, found))
            if isinstance(message, wire.EventMessage):
                found.append(message)
            elif metas is not None:
                metas.append(message)
        return found

    def meta(self, topic: str, timeout: float = 10.0) -> wire.MetaMessage:
        """The next meta message on ``topic`` (events in between are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.recv(deadline - time.monotonic())
            if isinstance(message, wire.MetaMessage) and message.topic == topic:
                return message
        raise AssertionError('no %s message within %ss' % (topic, timeout))

    def close(self) -> None:
        self.socket.close(linger=0)


class RawPusher:
    """A PUSH socket on the broker's ingest endpoint acting as one publisher ``pub``."""

    def __init__(self, context: zmq.Context, endpoint: str, pub: int | None = None,
                 curve: Any = None) -> None:
        from signal_bus.keys import apply_client
        self.socket = context.socket(zmq.PUSH)
        self.socket.linger = 0
        apply_client(self.socket, curve)
        self.socket.connect(endpoint)
        self.pub = pub if pub is not None else int.from_bytes(os.urandom(8), 'big')
        self.pseq = itertools.count(1)

    def send(self, signal: str, task_id: str, tseq: int | None, *, name: str = 'app.t',
             pseq: int | None = None, final: bool = False, **body: Any) -> int:
        """Send one well-formed event; returns its ``pseq``."""
        pseq = next(self.pseq) if pseq is None else pseq
        header = wire.encode_header(signal, name, task_id, tseq, self.pub, pseq)
        data = {'signal': signal, 'task_id': task_id, 'task_name': name, 'tseq': tseq,
                'final': final, 'host': 'test-host', 'pid': 4242}
        data.update(body)
        self.raw([header, wire.encode_body(data)])
        return pseq

    def raw(self, frames: list) -> None:
        """Send frames as they are (to test what the broker does with bad input)."""
        self.socket.send_multipart(frames)

    def close(self) -> None:
        self.socket.close(linger=0)


class ControlClient:
    """A DEALER on the broker's control endpoint."""

    def __init__(self, context: zmq.Context, endpoint: str, curve: Any = None) -> None:
        from signal_bus.keys import apply_client
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        apply_client(self.socket, curve)
        self.socket.connect(endpoint)

    def request(self, frame: bytes, timeout: float = 10.0) -> list[wire.ControlReply]:
        """Send one request; collect replies up to the stats map, ``end`` or ``error``."""
        self.socket.send(frame)
        replies: list[wire.ControlReply] = []
        while True:
            if not self.socket.poll(int(timeout * 1000)):
                raise AssertionError('no control reply within %ss' % timeout)
            reply = wire.decode_control_reply(self.socket.recv_multipart())
            replies.append(reply)
            if reply.kind != 'event':
                return replies

    def stats(self) -> dict:
        """The broker's stats map."""
        return self.request(wire.encode_stats_request())[-1].data

    def replay(self, from_seq: int, to_seq: int | None = None,
               limit: int = 1000) -> tuple[list[wire.EventMessage], dict]:
        """One replay page: the events and the ``end`` map."""
        replies = self.request(wire.encode_replay_request(from_seq, to_seq, limit))
        assert replies[-1].kind == 'end', replies[-1]
        return [reply.event for reply in replies[:-1]], replies[-1].data

    def close(self) -> None:
        self.socket.close(linger=0)


def body_of(message: wire.EventMessage) -> dict:
    """The decoded body map of an event message."""
    return msgpack.unpackb(message.body, raw=False)


class Rig(NamedTuple):
    """A running broker with a connected raw subscriber, a raw publisher and a control."""

    broker: Any
    sub: RawSubscriber
    pusher: RawPusher
    control: ControlClient
