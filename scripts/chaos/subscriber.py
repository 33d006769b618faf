"""A subscriber process that appends every event and every loss the bus reports to a
JSON-lines log: ``python -m scripts.chaos.subscriber --connect EP --control EP --log FILE``.

Lines (``k`` is the kind):
- ``{"k": "e", "ep", "seq", "sig", "id", "name", "fin", "src", "pid", "ts"}``: one event;
- ``{"k": "loss", "count", "first", "last", "t"}``: a loss reported by the bus through the
  subscriber's ``on_loss`` (``count`` null: the broker restarted; ``first``/``last`` null:
  a publisher's drops);
- ``{"k": "loss", ..., "ep", "why": "restart"}``: what this subscriber itself can no
  longer fetch after it was down (a broker restart meanwhile, or events gone from the
  ring), from the broker's own numbering;
- ``{"k": "ready", "ep", "queued", "t"}``: this run is connected.

A run started on an existing log continues it: it replays the broker's ring and skips
what the log already holds, so a killed and restarted subscriber misses nothing that the
ring still has, and reports what it does not.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any, Sequence, TextIO

from signal_bus import Subscriber


def load_seen(path: str) -> tuple[set[tuple[int, int]], int | None, int]:
    """What an earlier run logged: ``(epoch, seq)`` pairs, the last epoch and its last seq."""
    seen: set[tuple[int, int]] = set()
    last_epoch, last_seq = None, 0
    try:
        with open(path) as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue           # a line cut short by SIGKILL
                if row.get('k') == 'e':
                    seen.add((row['ep'], row['seq']))
                    if row['ep'] != last_epoch:
                        last_epoch, last_seq = row['ep'], 0
                    last_seq = max(last_seq, row['seq'])
    except FileNotFoundError:
        pass
    return seen, last_epoch, last_seq


def write(out: TextIO, **row: Any) -> None:
    """One line, written at once (line buffering), so a killed process leaves whole lines."""
    out.write(json.dumps(row) + '\n')


def report_restart_gap(out: TextIO, stats: dict[str, Any], last_epoch: int | None,
                       last_seq: int) -> None:
    """Log what the ring can no longer give a run that starts after ``last_epoch``/``last_seq``."""
    epoch, ring_first = stats['epoch'], int(stats.get('ring_first_seq') or 1)
    now = time.time()
    if last_epoch is None:
        return
    if last_epoch != epoch:
        write(out, k='loss', count=None, first=None, last=None, t=now, ep=last_epoch,
              why='restart')
        start = 1
    else:
        start = last_seq + 1
    if ring_first > start:
        write(out, k='loss', count=ring_first - start, first=start, last=ring_first - 1,
              t=now, ep=epoch, why='restart')


def main(argv: Sequence[str] | None = None) -> int:
    """Follow the bus until SIGTERM/SIGINT, logging to ``--log``."""
    parser = argparse.ArgumentParser(prog='scripts.chaos.subscriber')
    parser.add_argument('--connect', required=True)
    parser.add_argument('--control', required=True)
    parser.add_argument('--log', required=True)
    args = parser.parse_args(argv)
    seen, last_epoch, last_seq = load_seen(args.log)
    out = open(args.log, 'a', buffering=1)
    sub = Subscriber(args.connect, control=args.control)

    @sub.on_loss
    def lost(count: Any, first: Any, last: Any) -> None:
        write(out, k='loss', count=count, first=first, last=last, t=time.time())

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: sub.close())
    sub.wait_connected(30)
    stats = sub.broker_stats(10)
    report_restart_gap(out, stats, last_epoch, last_seq)
    queued = sub.replay_recent(None, timeout=30)
    write(out, k='ready', ep=stats['epoch'], queued=queued, t=time.time())
    for event in sub:
        key = (event.epoch, event.seq)
        if key in seen:
            continue
        seen.add(key)
        write(out, k='e', ep=event.epoch, seq=event.seq, sig=event.signal, id=event.task_id,
              name=event.task_name, fin=bool(event.get('final')), src=event.get('source'),
              pid=event.get('pid'), ts=event.get('ts'))
    out.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
