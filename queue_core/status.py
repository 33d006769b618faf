"""``queue-status``: one screen of a queue's state (SPEC §8).

Pending (by priority), scheduled (next due), in flight (task name, id, owner, age, lease
left), locks held, results stored, and with ``--control`` the broker's stats. ``--json``
prints one object. Exit 0, or 2 when the arguments are wrong or the storage cannot be
reached (one line). The age of an in-flight task is how long ago its current lease was
taken, read from the lease (``--lease``, default 30 s, as the consumer's).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from .argtypes import positive_float
from .exceptions import QueueError
from .locking import LOCK_PREFIX, RATE_PREFIX
from .revocation import REVOKE_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    from .api import TaskQueue
    from .consumer.queue_protocol import StatusQueue

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``queue-status``."""
    parser = argparse.ArgumentParser(
        prog='queue-status', description="One screen of a queue's state.")
    parser.add_argument('app', nargs='?', metavar='APP.MODULE.QUEUE',
                        help='the TaskQueue object, as queue-consumer takes it')
    parser.add_argument('--storage', metavar='URL', help='the storage URL (with --queue)')
    parser.add_argument('--queue', metavar='NAME', help="the TaskQueue's name")
    parser.add_argument('--control', metavar='EP',
                        help="a broker control endpoint, to show the broker's stats")
    parser.add_argument('--lease', metavar='SECONDS', type=positive_float, default=30.0,
                        help="the consumer's --lease, to tell an in-flight task's age")
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    return parser


def _open_queue(args: argparse.Namespace) -> TaskQueue:
    if args.app and (args.storage or args.queue):
        raise QueueError('give APP.MODULE.QUEUE or --storage URL --queue NAME, not both')
    if args.app:
        from .consumer.loader import load_queue
        return load_queue(args.app)
    if not (args.storage and args.queue):
        raise QueueError('give APP.MODULE.QUEUE, or --storage URL and --queue NAME')
    from .api import TaskQueue
    return TaskQueue(args.queue, storage=args.storage)


def collect(queue: StatusQueue, lease: float = 30.0, now: float | None = None) -> dict[str, Any]:
    """The status map of ``--json`` (without ``broker``), plus ``by_priority`` and
    ``next_due`` for the screen."""
    now = time.time() if now is None else now
    pending = queue.pending()
    scheduled = queue.scheduled()
    due = [task.eta for task in scheduled if task.eta is not None]
    in_flight = [{'id': row['id'], 'name': row['name'], 'owner': row['owner'],
                  'age': round(max(0.0, now - (row['lease_until'] - lease)), 3),
                  'lease_left': round(row['lease_until'] - now, 3)}
                 for row in queue.in_flight()]
    keys = queue.storage.result_items()
    locks = sorted(key[len(LOCK_PREFIX):] for key in keys if key.startswith(LOCK_PREFIX))
    return {'pending': len(pending), 'scheduled': len(scheduled), 'in_flight': in_flight,
            'locks': locks, 'results': sum(1 for key in keys if not key.startswith(
                (LOCK_PREFIX, RATE_PREFIX, REVOKE_PREFIX))),
            'by_priority': dict(sorted(collections.Counter(
                task.priority or 0 for task in pending).items(), reverse=True)),
            'next_due': min(due).isoformat() if due else None}


def render(status: dict[str, Any]) -> str:
    """The one screen."""
    lines = ['pending    %d%s' % (status['pending'], ''.join(
        '  (priority %s: %d)' % item for item in status['by_priority'].items())),
             'scheduled  %d%s' % (status['scheduled'], '  (next due %s)' % status['next_due']
                                  if status['next_due'] else ''),
             'in flight  %d' % len(status['in_flight'])]
    for row in status['in_flight']:
        lines.append('  %-30s %s  owner %s  age %.1fs  lease left %.1fs' % (
            row['name'], row['id'], row['owner'], row['age'], row['lease_left']))
    lines.append('locks      %s' % (', '.join(status['locks']) or 'none'))
    lines.append('results    %d' % status['results'])
    broker = status.get('broker')
    if broker is not None:
        lines.append('broker     ' + '  '.join('%s=%s' % (key, broker.get(key)) for key in (
            'received', 'published', 'last_seq', 'ring_first_seq', 'publisher_drops',
            'malformed', 'subscribers') if key in broker))
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run ``queue-status``; returns the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        queue = _open_queue(args)
        status = collect(queue, args.lease)
    except Exception as exc:  # a storage that cannot be reached raises its own errors
        print('queue-status: %s' % (str(exc).splitlines() or [type(exc).__name__])[0],
              file=err)
        return EXIT_USAGE
    if args.control:
        from .bus_adapter import broker_stats
        status['broker'] = broker_stats(args.control)
    else:
        status['broker'] = None
    if args.json:
        status = {key: status[key] for key in ('pending', 'scheduled', 'in_flight', 'locks',
                                                'results', 'broker')}
        print(json.dumps(status, default=repr), file=out)
    else:
        print(render(status), file=out)
    return 0


def entry_point() -> None:
    """Console script ``queue-status``."""
    sys.exit(main(sys.argv[1:]))


if __name__ == '__main__':  # pragma: no cover
    entry_point()
