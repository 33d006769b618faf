"""Shared parts of the subscriber and signal-tail tests (no tests of its own).

``Bus`` runs a broker on free loopback ports and publishes raw events to it through a
PUSH socket built with the wire encoders; ``LossyLink`` is a real XSUB/XPUB forwarder
between the broker and a subscriber that can hold messages back and drop chosen events,
so tests make a subscriber miss exactly the events they mean it to.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from typing import Any, Callable

import pytest
import zmq

from signal_bus import wire

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from helpers import free_port, wait_until  # noqa: E402


def endpoint(port: int) -> str:
    """``tcp://127.0.0.1:<port>``."""
    return 'tcp://127.0.0.1:%d' % port


def free_pair() -> int:
    """A port P such that P and P + 1 were both free (publish and control)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(('127.0.0.1', port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError('no two adjacent free ports on loopback')


class StandInBroker:
    """A broker that follows the documented protocol, for tests until the real one exists."""

    def __init__(self, ingest: str, publish: str, control: str, ring: int = 100_000) -> None:
        self.endpoints = (ingest, publish, control)
        self.ring_size = ring
        self.epoch = int.from_bytes(os.urandom(8), 'big')
        self.ring: list[list[bytes]] = []
        self.first_seq = 1
        self.last_sseq: dict[str, int] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> 'StandInBroker':
        self._thread.start()
        self._ready.wait(10)
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.ring) - 1

    def _run(self) -> None:
        context = zmq.Context()
        pull, xpub, router = (context.socket(kind) for kind in (zmq.PULL, zmq.XPUB, zmq.ROUTER))
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        for sock, ep in zip((pull, xpub, router), self.endpoints):
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(ep)
        self._ready.set()
        poller = zmq.Poller()
        for sock in (pull, xpub, router):
            poller.register(sock, zmq.POLLIN)
        next_beat = time.monotonic()
        while not self._stop.is_set():
            ready = dict(poller.poll(50))
            if pull in ready:
                self._release(xpub, pull.recv_multipart())
            if xpub in ready:
                xpub.recv()
                next_beat = 0
            if router in ready:
                self._answer(router, router.recv_multipart())
            if time.monotonic() >= next_beat:
                xpub.send_multipart(wire.encode_heartbeat(
                    self.epoch, self.last_seq, self.last_sseq, time.time()))
                next_beat = time.monotonic() + 1.0
        for sock in (pull, xpub, router):
            sock.close(0)
        context.term()

    def _release(self, xpub: zmq.Socket, frames: list[bytes]) -> None:
        header = wire.decode_header(frames[0])
        sseq = self.last_sseq[header.signal] = self.last_sseq.get(header.signal, 0) + 1
        meta = wire.EventMeta(self.last_seq + 1, sseq, self.epoch)
        message = wire.encode_event_message(wire.topic_for(header.signal, header.task_name),
                                            meta, frames[1])
        self.ring.append(message)
        if len(self.ring) > self.ring_size:
            self.ring.pop(0)
            self.first_seq += 1
        xpub.send_multipart(message)

    def _answer(self, router: zmq.Socket, frames: list[bytes]) -> None:
        identity, request = frames[0], wire.decode_request(frames[-1])
        if request == wire.OP_STATS:
            router.send_multipart([identity] + wire.encode_stats_reply(
                {'last_seq': self.last_seq, 'ring_first_seq': self.first_seq,
                 'published': self.last_seq}))
            return
        start = max(request.from_seq, 1)
        end = min(request.to_seq or self.last_seq, self.last_seq)
        missing = max(0, min(end, self.first_seq - 1) - start + 1)
        start = max(start, self.first_seq)
        stop = min(end, start + request.limit - 1)
        for seq in range(start, stop + 1):
            router.send_multipart([identity] + wire.encode_replay_event(
                *self.ring[seq - self.first_seq]))
        router.send_multipart([identity] + wire.encode_replay_end(
            request.from_seq, max(stop + 1, start), missing))


class Bus:
    """A broker on free loopback ports plus a raw publisher that never drops."""

    def __init__(self, ring: int = 100_000) -> None:
        self.ring = ring
        port = free_pair()
        self.ingest = endpoint(free_port())
        self.publish = endpoint(port)
        self.control = endpoint(port + 1)
        self.context = zmq.Context()
        self.push = self.context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(self.ingest)
        self.pub = int.from_bytes(os.urandom(8), 'big')
        self.pseq = 0
        self.broker: Any = None

    def start(self) -> 'Bus':
        """Start (or start again) the broker on the same endpoints."""
        self.broker = StandInBroker(self.ingest, self.publish, self.control,
                                    self.ring).start()
        return self

    def stop(self) -> None:
        """Stop the broker (the endpoints stay reserved for a restart)."""
        if self.broker is not None:
            self.broker.close()
            self.broker = None

    def restart(self) -> None:
        """Stop the broker and start a new one (a new epoch) on the same endpoints."""
        self.stop()
        self.start()

    def send(self, signal: str, name: str = 'app.tasks.add', task_id: str | None = None,
             **body: Any) -> str:
        """Publish one event with ``tseq`` nil (never held back); returns the task id."""
        task_id = task_id or uuid.uuid4().hex
        self.pseq += 1
        data = {'signal': signal, 'task_id': task_id, 'task_name': name, 'tseq': None,
                'ts': time.time(), 'host': 'testhost', 'pid': os.getpid(),
                'source': 'worker', 'args': [1, 2], 'kwargs': {}, 'retries': 0,
                'final': signal == 'complete'}
        data.update(body)
        self.push.send_multipart([
            wire.encode_header(signal, name, task_id, None, self.pub, self.pseq),
            wire.encode_body(data)])
        return task_id

    def published(self) -> int:
        """How many events the broker has released so far."""
        return self.broker.last_seq

    def wait_published(self, count: int) -> None:
        """Poll until the broker has released ``count`` events."""
        wait_until(lambda: self.published() >= count, timeout=10,
                   message='the broker to release %d events' % count)

    def close(self) -> None:
        """Stop everything this bus started."""
        self.stop()
        self.push.close(0)
        self.context.term()


class LossyLink:
    """A forwarder between the broker's publish socket and subscribers that can hold
    messages back (``hold()``/``release()``) and drop the events whose seq ``drop``
    selects, so a subscriber misses exactly those."""

    def __init__(self, upstream: str, drop: Callable[[int], bool] = lambda seq: False):
        self.upstream = upstream
        self.endpoint = endpoint(free_pair())
        self.drop = drop
        self.dropped: list[int] = []
        self._held = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def hold(self) -> None:
        """Keep what arrives from now on until ``release()``."""
        self._held.set()

    def release(self) -> None:
        """Forward what was held, in order (dropping what ``drop`` selects)."""
        self._held.clear()

    def _run(self) -> None:
        context = zmq.Context()
        xsub, xpub = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        for sock in (xsub, xpub):
            sock.setsockopt(zmq.LINGER, 0)
        xsub.connect(self.upstream)
        xpub.bind(self.endpoint)
        self._ready.set()
        backlog: list[list[bytes]] = []
        while not self._stop.is_set():
            if xpub.poll(0):
                xsub.send(xpub.recv())
            if xsub.poll(5):
                backlog.append(xsub.recv_multipart())
            while backlog and not self._held.is_set():
                self._forward(xpub, backlog.pop(0))
        for sock in (xsub, xpub):
            sock.close(0)
        context.term()

    def _forward(self, xpub: zmq.Socket, frames: list[bytes]) -> None:
        if len(frames) == 3:
            seq = wire.decode_meta(frames[1]).seq
            if self.drop(seq):
                self.dropped.append(seq)
                return
        xpub.send_multipart(frames)

    def close(self) -> None:
        """Stop forwarding."""
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def bus():
    """A running broker with a raw publisher attached."""
    running = Bus().start()
    yield running
    running.close()
