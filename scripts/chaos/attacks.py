"""Abusive clients for the broker (issue 10 item 2 at bounded scale, fuzzed control
requests, connection churn). Each attack is a function ``attack(endpoints, scale, rng,
stats)`` (``stats()`` the broker's stats answer or ``None``) that returns a short
description of what it did; it cleans up its own sockets.

Every attacker speaks the wire format (or fuzzes it), so SPEC §7 "Resource ceilings"
says none of them may make the broker exit, stall or grow past its ceiling.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import msgpack
import zmq

from signal_bus import wire

from ..support.polling import poll


Stats = Callable[[], 'dict[str, Any] | None']


@dataclass(frozen=True)
class Endpoints:
    """The broker under attack."""

    ingest: str
    publish: str
    control: str


@dataclass(frozen=True)
class Scale:
    """How hard each attack pushes (the issue's figures divided down; see docs/chaos.md)."""

    slow_subscribers: int = 50
    slow_events: int = 5000
    subscriptions: int = 5000
    large_events: int = 400
    large_event_bytes: int = 250 * 1024
    hoarders: int = 4
    hoarder_requests: int = 50
    fuzz_requests: int = 2000
    churn_cycles: int = 1000


class RawPublisher:
    """A PUSH socket sending well-formed events under its own ``pub`` with a gapless
    ``pseq``, so the broker counts no drops for it."""

    def __init__(self, context: zmq.Context, ingest: str) -> None:
        self.sock = context.socket(zmq.PUSH)
        self.sock.sndtimeo = 5000
        self.sock.connect(ingest)
        self.pub = int.from_bytes(os.urandom(8), 'big') >> 1
        self.pseq = 0

    def send(self, task_id: str, payload: bytes) -> None:
        """One ``complete`` event of the task ``chaos.abuse`` whose body carries ``payload``."""
        self.pseq += 1
        header = wire.encode_header('complete', 'chaos.abuse', task_id, 1, self.pub,
                                    self.pseq)
        body = wire.encode_body({'signal': 'complete', 'task_id': task_id,
                                 'task_name': 'chaos.abuse', 'final': True, 'pad': payload})
        self.sock.send(header, zmq.SNDMORE)
        self.sock.send(body)

    def close(self) -> None:
        """Let what is queued leave (up to 5 s), then close."""
        self.sock.close(linger=5000)


def _subscriptions(stats: Stats) -> int:
    """The broker's count of subscriptions (0 when it does not answer)."""
    return int((stats() or {}).get('subscriptions', 0))


def slow_subscribers(ep: Endpoints, scale: Scale, rng: random.Random, stats: Stats) -> str:
    """Subscribers that never read while events flow, then close (item 2a)."""
    context = zmq.Context()
    subs = []
    before = _subscriptions(stats)
    try:
        for _ in range(scale.slow_subscribers):
            sock = context.socket(zmq.SUB)
            sock.subscribe(b'')
            sock.connect(ep.publish)
            subs.append(sock)
        poll(lambda: _subscriptions(stats) >= before + len(subs), 10.0, 0.1)
        pub = RawPublisher(context, ep.ingest)
        pad = rng.randbytes(450)
        for index in range(scale.slow_events):
            pub.send('slow-%d' % index, pad)
        pub.close()
    finally:
        for sock in subs:
            sock.close(linger=0)
        context.term()
    return '%d subscribers that never read, %d events of ~0.5 KB' % (
        scale.slow_subscribers, scale.slow_events)


def subscription_flood(ep: Endpoints, scale: Scale, rng: random.Random, stats: Stats) -> str:
    """One connection sending many distinct subscriptions of ~1,000 bytes (item 2b)."""
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    before = _subscriptions(stats)
    try:
        sock.connect(ep.publish)
        for index in range(scale.subscriptions):
            sock.subscribe(b'%08d' % index + rng.randbytes(992))
        # Until the broker has them all, or has stopped taking them (a cap may refuse).
        poll(lambda: _subscriptions(stats) >= before + scale.subscriptions, 20.0, 0.2)
    finally:
        sock.close(linger=0)
        context.term()
    return '%d distinct subscriptions of 1,000 bytes on one connection' % scale.subscriptions


def large_events(ep: Endpoints, scale: Scale, rng: random.Random, stats: Stats) -> str:
    """Events just under the size limit, enough to fill a count-bounded ring (item 2c)."""
    context = zmq.Context()
    try:
        pub = RawPublisher(context, ep.ingest)
        pad = rng.randbytes(scale.large_event_bytes)
        for index in range(scale.large_events):
            pub.send('large-%d' % index, pad)
        pub.close()
    finally:
        context.term()
    return '%d events of %d KB' % (scale.large_events, scale.large_event_bytes // 1024)


def replay_hoarders(ep: Endpoints, scale: Scale, rng: random.Random, stats: Stats) -> str:
    """Control clients asking for whole replay pages without reading them (item 2d)."""
    context = zmq.Context()
    socks = []
    try:
        request = wire.encode_replay_request(1, 2 ** 62, 1000)
        for _ in range(scale.hoarders):
            sock = context.socket(zmq.DEALER)
            sock.sndtimeo = 2000
            sock.connect(ep.control)
            socks.append(sock)
        for _ in range(scale.hoarder_requests):
            for sock in socks:
                try:
                    sock.send(request)
                except zmq.Again:
                    pass
        # The hoarders stay connected, unread, while the broker serves them and another
        # client: it must still answer that one.
        poll(lambda: stats() is not None, 10.0, 0.1)
    finally:
        for sock in socks:
            sock.close(linger=0)
        context.term()
    return '%d control clients x %d replay requests of 1,000 events, never read' % (
        scale.hoarders, scale.hoarder_requests)


def _fuzzed_request(rng: random.Random) -> list[bytes]:
    """One hostile control request: bytes, wrong types, odd ops, extremes, extra frames."""
    numbers = [-1, 0, 2 ** 64 - 1, 2 ** 63, 1.5, 'x', None, True, [], {}]
    shapes: list[Callable[[], Any]] = [
        lambda: rng.randbytes(rng.randrange(0, 80)),
        lambda: msgpack.packb(rng.choice([None, 1, 'stats', [1, 2], b'op'])),
        lambda: msgpack.packb({'op': rng.choice(['', 'STATS', 'drop', 7, None, 'replay'])}),
        lambda: msgpack.packb({'op': 'replay', 'from': rng.choice(numbers),
                               'to': rng.choice(numbers), 'limit': rng.choice(numbers)}),
        lambda: msgpack.packb({'op': 'stats', 'pad': rng.randbytes(rng.randrange(60000,
                                                                                 70000))}),
        lambda: msgpack.packb({'op': 'replay', 'from': 1, 'to': 10, 'limit': 10,
                               rng.randbytes(4): rng.random()}),
    ]
    frames = [rng.choice(shapes)()]
    if rng.random() < 0.1:
        frames.append(rng.randbytes(rng.randrange(1, 40)))
    return frames


def control_fuzz(ep: Endpoints, scale: Scale, rng: random.Random, stats: Stats) -> str:
    """Fuzzed control requests from one client, reading what comes back."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    replies = 0
    try:
        sock.connect(ep.control)
        for _ in range(scale.fuzz_requests):
            sock.send_multipart(_fuzzed_request(rng))
            while sock.poll(0):
                sock.recv_multipart()
                replies += 1
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and sock.poll(200):
            sock.recv_multipart()
            replies += 1
    finally:
        sock.close(linger=0)
        context.term()
    return '%d fuzzed control requests, %d replies' % (scale.fuzz_requests, replies)


def churn(ep: Endpoints, scale: Scale, rng: random.Random, stats: Stats) -> str:
    """Sockets that connect and go away at once, of every kind the broker serves."""
    context = zmq.Context()
    kinds = [(zmq.SUB, ep.publish), (zmq.DEALER, ep.control), (zmq.PUSH, ep.ingest)]
    try:
        for index in range(scale.churn_cycles):
            kind, endpoint = kinds[index % len(kinds)]
            sock = context.socket(kind)
            if kind == zmq.SUB:
                sock.subscribe(b'')
            sock.connect(endpoint)
            if kind == zmq.DEALER and rng.random() < 0.5:
                sock.send(wire.encode_stats_request())
            sock.close(linger=0)
    finally:
        context.term()
    return '%d connect-and-close cycles (SUB, DEALER, PUSH)' % scale.churn_cycles


#: The attacks in the order the phase runs them.
ATTACKS: dict[str, Callable[[Endpoints, Scale, random.Random, Stats], str]] = {
    'slow-subscribers': slow_subscribers,
    'subscription-flood': subscription_flood,
    'large-events': large_events,
    'replay-hoarders': replay_hoarders,
    'control-fuzz': control_fuzz,
    'churn': churn,
}
