"""A publisher that sends far faster than the broker takes:
``python -m scripts.chaos.flood --ingest EP --count N``.

It publishes ``N`` events of the task ``chaos.flood`` as fast as it can (its buffer
overflows and drops, counted), waits for its buffer to drain, then sends one last event so
that the broker sees every hole in its ``pseq`` and reports it (``--settle``: again until
the socket takes one), closes, and prints its counts as one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

from signal_bus import BusConfig, Publisher

#: Small queues, as on a busy publisher: what the broker cannot take in time is dropped.
BUFFER = 1000


class FloodTask:
    """The attributes a publisher reads from a task."""

    registry_name = 'chaos.flood'
    name = 'flood'
    args = ()
    kwargs: dict = {}
    retries = 0
    tseq = None

    def __init__(self, task_id: str) -> None:
        self.id = task_id


def send_last(publisher: Publisher, task: FloodTask, settle: bool) -> None:
    """Publish the final event; with ``settle``, again until the socket takes one (a
    final event that is dropped too would hide the holes before it)."""
    deadline = time.monotonic() + 10
    while True:
        dropped = publisher.stats()['dropped']
        publisher.publish('complete', task)
        while publisher.stats()['pending'] and time.monotonic() < deadline:
            time.sleep(0.01)
        if not settle or publisher.stats()['dropped'] == dropped or \
                time.monotonic() > deadline:
            return
        time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    """Flood, drain, close; print ``{published, dropped, sent}``."""
    parser = argparse.ArgumentParser(prog='scripts.chaos.flood')
    parser.add_argument('--ingest', required=True)
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--settle', action='store_true',
                        help='repeat the last event until the socket takes one')
    args = parser.parse_args(argv)
    publisher = Publisher(BusConfig(ingest=args.ingest, send_hwm=BUFFER))
    task = FloodTask('flood')
    for index in range(args.count):
        task.id = 'flood-%d' % index
        publisher.publish('complete', task)
    deadline = time.monotonic() + 20
    while publisher.stats()['pending'] and time.monotonic() < deadline:
        time.sleep(0.01)
    task.id = 'flood-end'
    send_last(publisher, task, args.settle)
    publisher.close()
    stats = publisher.stats()
    print(json.dumps({'published': stats['pseq'], 'dropped': stats['dropped'],
                      'sent': stats['sent']}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
