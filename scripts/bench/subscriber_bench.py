"""How fast ``signal_bus.Subscriber`` hands events to a handler, next to a bare pyzmq loop.

One process, one core (pinned with ``--cpu``, default 0): an XPUB bound here on loopback
TCP fills a SUB socket's queue with N events as the broker would send them (three frames,
consecutive ``seq``, a body built by the publisher's own body builder), then the receive
side is timed alone:

(a) a bare loop of ``recv_multipart()`` on a plain SUB socket, nothing decoded;
(b) ``Subscriber.run()`` with one handler that touches only what the topic and meta carry
    (``signal``, ``seq``): the body stays encoded, as a handler that does not read it
    would leave it;
(c) the same with a handler that reads ``task.id`` and ``task.args`` (every body decoded).

Each round runs (a), (b) and (c) in turn. The machine is shared, so besides wall-clock
rates it reports rates by the receiving thread's CPU time (``time.thread_time``), which a
busy neighbour does not inflate; the ratios are taken round by round. Prints the medians,
(b)/(a) and (c)/(a), and with ``--profile`` a cProfile of (c).

    python scripts/bench/subscriber_bench.py [-n 100000] [--rounds 3] [--profile]

``run(rounds, events)`` gives (c) as a ``Figure`` (issue 11's row, target 80,000/s) for
``run_all.py``.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
import types
from typing import Any, Callable

import zmq

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.common import Figure  # noqa: E402

from signal_bus import wire  # noqa: E402
from signal_bus.body import build_body, encode_body  # noqa: E402
from signal_bus.subscriber import Subscriber  # noqa: E402

EPOCH = 424242
#: Issue 11's target for (c): events decoded and handed to one handler.
TARGET = 80_000
#: Long enough for loopback TCP to move every queued message into the SUB socket's queue.
SETTLE_SECONDS = 1.0


def realistic_body(number: int) -> bytes:
    """An ``executing`` event's body as a worker's publisher builds it."""
    task = types.SimpleNamespace(id='5f0c8a3e-2b1d-4c6e-9a7f-%012d' % number,
                                 registry_name='myapp.tasks.resize_image',
                                 args=('s3://bucket/img/%d.png' % number, 640, 480),
                                 kwargs={'quality': 85}, retries=2, tseq=2, final=False)
    return encode_body(build_body('executing', task, None, 'worker', host='worker-01',
                                  pid=31337))


def event_frames(count: int) -> list[list[bytes]]:
    """``count`` three-frame event messages numbered 1..count, as the broker sends them."""
    topic = wire.topic_for('executing', 'myapp.tasks.resize_image')
    return [[topic, wire.encode_meta_fields(seq, seq, EPOCH), realistic_body(seq)]
            for seq in range(1, count + 1)]


class Feed:
    """An XPUB on a free loopback port that fills subscribers' queues."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.xpub = self.context.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.SNDHWM, 0)
        self.xpub.setsockopt(zmq.LINGER, 0)
        self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        port = self.xpub.bind_to_random_port('tcp://127.0.0.1')
        self.endpoint = 'tcp://127.0.0.1:%d' % port

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        """Wait until a new subscription arrives (the subscriber is connected)."""
        deadline = time.monotonic() + timeout
        while self.xpub.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            if self.xpub.recv()[:1] == b'\x01':
                return
        raise RuntimeError('no subscriber connected within %.0fs' % timeout)

    def heartbeat(self, last_seq: int) -> None:
        """A heartbeat as the broker sends one (the subscriber's numbering starts here)."""
        self.xpub.send_multipart(wire.encode_heartbeat(EPOCH, last_seq, {}, time.time()))

    def fill(self, frames: list[list[bytes]]) -> None:
        """Send every message and give loopback TCP time to deliver them all."""
        for message in frames:
            self.xpub.send_multipart(message)
        time.sleep(SETTLE_SECONDS + len(frames) / 100_000)

    def close(self) -> None:
        """Close the socket and the context."""
        self.xpub.close(0)
        self.context.term()


def bare_loop(feed: Feed, frames: list[list[bytes]]) -> tuple[float, float]:
    """Seconds for a plain SUB socket to ``recv_multipart`` every pre-filled message."""
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b'')
    sub.connect(feed.endpoint)
    feed.wait_subscribed()
    feed.fill(frames)
    recv = sub.recv_multipart
    started = clocks()
    for _ in range(len(frames)):
        recv()
    elapsed = since(started)
    sub.close(0)
    context.term()
    return elapsed


def clocks() -> tuple[float, float]:
    """Wall-clock and this thread's CPU time, now."""
    return time.perf_counter(), time.thread_time()


def since(started: tuple[float, float]) -> tuple[float, float]:
    """Wall-clock and CPU seconds since ``started``."""
    wall, cpu = clocks()
    return wall - started[0], cpu - started[1]


def subscriber_run(feed: Feed, frames: list[list[bytes]], reads_body: bool,
                   profile: cProfile.Profile | None = None) -> tuple[float, float]:
    """Seconds for ``Subscriber.run()`` to hand every pre-filled event to one handler."""
    sub = Subscriber(feed.endpoint, control='tcp://127.0.0.1:9', rcvhwm=0)
    total, seen = len(frames), [0]

    def touch_meta(signal: str, task: Any) -> None:
        seen[0] += 1
        if task.seq == total:
            sub.close()

    def touch_body(signal: str, task: Any) -> None:
        seen[0] += 1
        task.id, task.args
        if task.seq == total:
            sub.close()

    sub.signal()(touch_body if reads_body else touch_meta)
    feed.wait_subscribed()
    feed.heartbeat(0)
    sub.wait_connected(10)
    feed.fill(frames)
    started = clocks()
    if profile is not None:
        profile.runcall(sub.run)
    else:
        sub.run()
    elapsed = since(started)
    if seen[0] != total:
        raise RuntimeError('the handler saw %d of %d events' % (seen[0], total))
    return elapsed


LABELS = ('(a) bare recv_multipart loop', '(b) Subscriber, handler reads seq',
          '(c) Subscriber, handler reads id+args')


def run_rounds(feed: Feed, frames: list[list[bytes]], rounds: int) -> list[list[tuple]]:
    """Per round, ``(wall rate, cpu rate)`` of (a), (b) and (c)."""
    count, results = len(frames), []
    for number in range(rounds):
        timings = [bare_loop(feed, frames), subscriber_run(feed, frames, False),
                   subscriber_run(feed, frames, True)]
        results.append([(count / wall, count / cpu) for wall, cpu in timings])
        print('round %d: %s' % (number + 1, '; '.join(
            '%.0f/s wall, %.0f/s cpu' % rates for rates in results[-1])), flush=True)
    return results


def report(results: list[list[tuple]]) -> None:
    """Median rates and the median of each round's ratio to the bare loop."""
    for index, label in enumerate(LABELS):
        walls = [rnd[index][0] for rnd in results]
        cpus = [rnd[index][1] for rnd in results]
        line = '%-40s %8.0f events/s by wall clock, %8.0f by CPU time' % (
            label, statistics.median(walls), statistics.median(cpus))
        if index:
            line += '; ratio to (a) %.2f wall, %.2f CPU' % (
                statistics.median(rnd[index][0] / rnd[0][0] for rnd in results),
                statistics.median(rnd[index][1] / rnd[0][1] for rnd in results))
        print(line, flush=True)


def run(rounds: int = 3, events: int = 100_000) -> tuple[list[Figure], list[list[tuple]]]:
    """For ``run_all``: (c) by wall clock against the bare loop, and the raw rounds."""
    frames = event_frames(events)
    feed = Feed()
    try:
        results = run_rounds(feed, frames, rounds)
    finally:
        feed.close()
    bare = statistics.median(rnd[0][0] for rnd in results)
    ours = statistics.median(rnd[2][0] for rnd in results)
    cpu = statistics.median(rnd[2][1] for rnd in results)
    return [Figure('7 subscriber', 'Subscriber, 1 handler, bodies decoded', 'events/s', ours,
                   ref=bare, ratio=ours / bare, ratio_of='ours / bare loop',
                   ref_label='bare recv_multipart loop', target='>= 80,000/s',
                   met=ours >= TARGET, note='%.0f events/s by CPU time' % cpu)], results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-n', '--events', type=int, default=100_000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--cpu', type=int, default=0, help='pin to this core (-1: no pin)')
    parser.add_argument('--profile', action='store_true', help='cProfile one round of (c)')
    args = parser.parse_args(argv)
    if args.cpu >= 0 and hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, {args.cpu})
    frames = event_frames(args.events)
    print('%d events, body %d bytes; %d rounds'
          % (args.events, len(frames[0][2]), args.rounds))
    feed = Feed()
    try:
        report(run_rounds(feed, frames, args.rounds))
        if args.profile:
            profile = cProfile.Profile()
            subscriber_run(feed, frames, True, profile)
            pstats.Stats(profile).sort_stats('tottime').print_stats(14)
    finally:
        feed.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
