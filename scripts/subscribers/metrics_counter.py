#!/usr/bin/env python3
"""Count task events per signal and per task, and print a table every few seconds.

Copy this file to feed your metrics system instead of the terminal: ``Counter.table()``
is the only place that formats. The table is printed every ``--interval`` seconds (only
when something changed) and once more on exit (Ctrl-C, SIGTERM).

    python scripts/subscribers/metrics_counter.py --connect tcp://broker-host:7558 \\
        --interval 30 --curve-server-key broker.key --curve-keypair me.key_secret
"""
from __future__ import annotations

import argparse
import collections
import signal
import sys
import time
from typing import Sequence

from signal_bus import Subscriber
from signal_bus.cli_args import add_curve_client_arguments
from signal_bus.event import Event


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description='Count bus events per signal and task.')
    parser.add_argument('--connect', default='tcp://127.0.0.1:7558', metavar='EP',
                        help='broker publish endpoint (default %(default)s)')
    parser.add_argument('--control', metavar='EP',
                        help='broker control endpoint (default: publish port + 1)')
    parser.add_argument('--signal', action='append', metavar='S',
                        help='count only these signals (repeatable)')
    parser.add_argument('--task', action='append', metavar='GLOB',
                        help='count only tasks whose name matches (repeatable)')
    parser.add_argument('--interval', type=float, default=10.0, metavar='SECONDS',
                        help='seconds between tables (default %(default)s)')
    add_curve_client_arguments(parser)
    return parser


class Counter:
    """Counts per (task name, signal), plus the bus's own loss counts."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.lost = 0
        self.restarts = 0

    def add(self, event: Event) -> None:
        """Count one event."""
        self.counts[(event.name, event.signal)] += 1

    def on_loss(self, count: int | None, first_seq: int | None,
                last_seq: int | None) -> None:
        """Loss handler: counts lost events and broker restarts."""
        if count is None:
            self.restarts += 1
        else:
            self.lost += count

    def table(self) -> str:
        """Rows per task, a column per signal seen, and a TOTAL row."""
        signals = sorted({signal for _, signal in self.counts})
        tasks = sorted({task for task, _ in self.counts})
        width = max([len('TOTAL'), len('task')] + [len(task) for task in tasks])
        header = 'task'.ljust(width) + ''.join(' %12s' % s for s in signals)
        rows = [header, '-' * len(header)]
        for task in tasks + ['TOTAL']:
            cells = [sum(n for (t, s), n in self.counts.items() if s == signal
                         and (task == 'TOTAL' or t == task)) for signal in signals]
            rows.append(task.ljust(width) + ''.join(' %12d' % n for n in cells))
        rows.append('lost on the bus: %d; broker restarts: %d' % (self.lost, self.restarts))
        return '\n'.join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Count until Ctrl-C or SIGTERM, printing the table every ``--interval`` seconds."""
    args = build_parser().parse_args(argv)
    counter = Counter()
    sub = Subscriber(args.connect, control=args.control, signals=args.signal,
                     tasks=args.task, curve_server_key=args.curve_server_key,
                     curve_keypair=args.curve_keypair)
    sub.on_loss(counter.on_loss)
    signal.signal(signal.SIGTERM, lambda *_: sub.close())
    next_table, changed = time.monotonic() + args.interval, False
    try:
        while not sub.closed:
            event = sub.receive(timeout=max(0.0, next_table - time.monotonic()))
            if event is not None:
                counter.add(event)
                changed = True
            if time.monotonic() >= next_table:
                if changed:
                    print(counter.table() + '\n', flush=True)
                next_table, changed = time.monotonic() + args.interval, False
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    print(counter.table(), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
