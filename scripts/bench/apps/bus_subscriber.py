"""A bus subscriber for the benchmarks: counts events, may be slow, may time them.

Prints ``ready`` once subscribed; on each ``stats`` line on standard input prints one
JSON line of counts; exits at end of input.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from signal_bus import Subscriber


class Counter:
    """What the subscriber saw: events, losses reported, publish-to-receive latency."""

    def __init__(self, sleep: float, timing: bool) -> None:
        self.sleep = sleep
        self.timing = timing
        self.handled = 0
        self.first = self.last = 0.0
        self.loss_notices = 0
        self.lost = 0
        self.restarts = 0
        self.latencies: list[float] = []

    def on_event(self, event: Any) -> None:
        """Count one event (and sleep, for a slow subscriber)."""
        now = time.monotonic()
        if self.timing:
            self.latencies.append(time.time() - event.ts)
        if not self.handled:
            self.first = now
        self.last = now
        self.handled += 1
        if self.sleep:
            time.sleep(self.sleep)

    def on_loss(self, count: int | None, first_seq: int | None, last_seq: int | None) -> None:
        """Count a loss the subscriber could not repair (``None``: broker restart)."""
        self.loss_notices += 1
        if count is None:
            self.restarts += 1
        else:
            self.lost += count

    def report(self, sub: Subscriber) -> dict[str, Any]:
        """Counts so far as one JSON-ready map."""
        lat = sorted(self.latencies)
        def q(f: float) -> float | None:
            return lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else None
        return {'handled': self.handled, 'first': self.first, 'last': self.last,
                'loss_notices': self.loss_notices, 'lost': self.lost,
                'restarts': self.restarts, 'latency_p50_ms': q(0.5),
                'latency_p99_ms': q(0.99), 'subscriber': sub.stats()}


def main() -> None:
    """Subscribe, count in a thread, answer ``stats`` requests until end of input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--publish', required=True, help="the broker's publish endpoint")
    parser.add_argument('--sleep-ms', type=float, default=0.0, help='sleep per event')
    parser.add_argument('--timing', action='store_true', help='record event latency')
    args = parser.parse_args()
    counter = Counter(args.sleep_ms / 1000.0, args.timing)
    sub = Subscriber(args.publish)
    sub.on_loss(counter.on_loss)
    sub.wait_connected(10)

    def loop() -> None:
        for event in sub:
            counter.on_event(event)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    print('ready', flush=True)
    for line in sys.stdin:
        if line.strip() == 'stats':
            print(json.dumps(counter.report(sub)), flush=True)
    sub.close()
    thread.join(2)


if __name__ == '__main__':
    main()
