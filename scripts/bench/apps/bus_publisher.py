"""A publishing process for the broker benchmark: N events, paced or as fast as it can.

Each event is a ``complete`` of its own task (``tseq`` 1), with a small argument list,
as a worker would publish it; one more follows once the buffer has drained, so drops at
the end of the burst show as a hole. Prints the publisher's counters as one JSON line, then
stays open until a line arrives on standard input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
import uuid

from signal_bus import BusConfig, Publisher

PACE_SLICE = 0.0005  # when paced, look at the clock at least every half millisecond


def send_tail_marker(publisher: Publisher, prefix: str, attempts: int = 10) -> None:
    """One more event once the burst has left, as a publisher that lives on would send:
    it lets the broker see (and report) drops at the end of the burst. Retried while it is
    itself dropped (the socket queue may still be full)."""
    for attempt in range(attempts):
        dropped = publisher.stats()['dropped']
        publisher.publish('complete', types.SimpleNamespace(
            id='%sf%07x' % (prefix, attempt), registry_name='apps.ours.noop', args=(),
            kwargs={}, retries=0, tseq=1, final=True))
        publisher.flush()  # a coalescing publisher would hold it otherwise
        deadline = time.monotonic() + 5
        while publisher.stats()['pending'] and time.monotonic() < deadline:
            time.sleep(0.01)
        if publisher.stats()['dropped'] == dropped:
            return
        time.sleep(0.3)


def main() -> None:
    """Publish ``--count`` events at ``--rate`` per second (0: unpaced), then close."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ingest', required=True, help="the broker's ingest endpoint")
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--rate', type=float, default=0.0, help='events per second')
    parser.add_argument('--start-at', type=float, default=0.0,
                        help='wall-clock time to start at, so publishers start together')
    parser.add_argument('--control', help="the broker's control endpoint (batch probe)")
    parser.add_argument('--coalesce', action='store_true',
                        help='batch events as a consumer worker does, if the broker may')
    args = parser.parse_args()
    publisher = Publisher(BusConfig(ingest=args.ingest, control=args.control)
                          if args.control else args.ingest)
    if args.coalesce:
        publisher.coalesce()
    prefix = uuid.uuid4().hex[:24]
    tasks = [types.SimpleNamespace(id='%s%08x' % (prefix, i), registry_name='apps.ours.noop',
                                   args=(i,), kwargs={}, retries=0, tseq=1, final=True)
             for i in range(args.count)]
    publisher.pub  # builds the channel and connects before the clock starts
    if args.coalesce:  # the broker's answer to the batch probe arrives before the clock starts
        publisher.wait_for_batches(2.0)
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
    publisher.flush()
    elapsed = time.monotonic() - started
    # Let the sender thread drain before the bounded close.
    deadline = time.monotonic() + 10
    while publisher.stats()['pending'] and time.monotonic() < deadline:
        time.sleep(0.01)
    send_tail_marker(publisher, prefix)
    stats = publisher.stats()
    stats.update(elapsed=elapsed)
    print(json.dumps(stats), flush=True)
    # Stay open (a closing publisher drops what is still queued after its bounded linger)
    # until the benchmark has seen the broker settle and says so.
    sys.stdin.readline()
    publisher.close()


if __name__ == '__main__':
    main()
