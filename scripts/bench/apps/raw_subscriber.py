"""A counting subscriber for the broker benchmark: plain pyzmq, so the hop measured is the
broker's (or the relay's), not a subscriber library's.

Drains its SUB socket in a loop, counts event messages (three frames; meta topics are
skipped), and with ``--timing`` reads each body's ``ts`` for the publish-to-receive
latency. Prints ``ready`` once subscribed; on each ``stats`` line on standard input prints
one JSON line of counts; exits at end of input.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import msgpack
import zmq


class Counter:
    """Events seen, first/last arrival, latencies."""

    def __init__(self) -> None:
        self.handled = 0
        self.first = self.last = 0.0
        self.latencies: list[float] = []

    def report(self) -> dict[str, Any]:
        """Counts so far as one JSON-ready map (the keys bus_subscriber.py reports)."""
        lat = sorted(self.latencies)

        def q(f: float) -> float | None:
            return lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else None
        return {'handled': self.handled, 'first': self.first, 'last': self.last,
                'loss_notices': 0, 'lost': 0, 'restarts': 0, 'latency_p50_ms': q(0.5),
                'latency_p99_ms': q(0.99), 'subscriber': {}}


def count_loop(sock: zmq.Socket, counter: Counter, timing: bool, stop: threading.Event) -> None:
    """Receive until ``stop``; many messages per wake-up."""
    while not stop.is_set():
        if not sock.poll(100):
            continue
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) != 3:
                continue
            now = time.monotonic()
            if not counter.handled:
                counter.first = now
            counter.last = now
            counter.handled += 1
            if timing:
                counter.latencies.append(time.time() - msgpack.unpackb(frames[2])['ts'])


def main() -> None:
    """Subscribe, count in a thread, answer ``stats`` requests until end of input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--publish', required=True)
    parser.add_argument('--timing', action='store_true')
    args = parser.parse_args()
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.rcvhwm = 100_000
    sock.subscribe(b'')
    sock.connect(args.publish)
    counter, stop = Counter(), threading.Event()
    thread = threading.Thread(target=count_loop, args=(sock, counter, args.timing, stop),
                              daemon=True)
    thread.start()
    print('ready', flush=True)
    for line in sys.stdin:
        if line.strip() == 'stats':
            print(json.dumps(counter.report()), flush=True)
    stop.set()
    thread.join(2)
    sock.close(0)
    context.term()


if __name__ == '__main__':
    main()
