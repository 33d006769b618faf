"""A publishing process for the broker benchmark: N events, paced or as fast as it can.

Each event is a ``complete`` of its own task (``tseq`` 1), with a small argument list,
as a worker would publish it. Prints the publisher's counters as one JSON line.
"""
from __future__ import annotations

import argparse
import json
import time
import types
import uuid

from signal_bus import Publisher

PACE_SLICE = 0.0005  # when paced, look at the clock at least every half millisecond


def main() -> None:
    """Publish ``--count`` events at ``--rate`` per second (0: unpaced), then close."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ingest', required=True, help="the broker's ingest endpoint")
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--rate', type=float, default=0.0, help='events per second')
    parser.add_argument('--start-at', type=float, default=0.0,
                        help='wall-clock time to start at, so publishers start together')
    args = parser.parse_args()
    publisher = Publisher(args.ingest)
    prefix = uuid.uuid4().hex[:24]
    tasks = [types.SimpleNamespace(id='%s%08x' % (prefix, i), registry_name='apps.ours.noop',
                                   args=(i,), kwargs={}, retries=0, tseq=1, final=True)
             for i in range(args.count)]
    publisher.pub  # builds the sender thread and connects before the clock starts
    delay = args.start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    batch = max(1, int(args.rate * PACE_SLICE))
    started = time.monotonic()
    for i, task in enumerate(tasks, 1):
        publisher.publish('complete', task)
        if args.rate and i % batch == 0:
            ahead = started + i / args.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    elapsed = time.monotonic() - started
    # Let the sender thread drain before the bounded close.
    deadline = time.monotonic() + 10
    while publisher.stats()['pending'] and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = publisher.stats()
    publisher.close()
    stats.update(elapsed=elapsed)
    print(json.dumps(stats), flush=True)


if __name__ == '__main__':
    main()
