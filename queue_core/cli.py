"""``queue-consumer``: run the consumer for an application's ``TaskQueue``.

``build_parser()`` and ``main(argv) -> int`` make the command testable in-process;
``entry_point()`` is the console script. It takes Huey 3.5.4's consumer options with
Huey's meaning (``-w -k -d -m -b -c -C -f -L -M -t -g -s -n -l -v -q -S``), so a
``huey_consumer`` command line works with the program name changed; see docs/consumer.md
for the few that differ and why.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Sequence

from .argtypes import non_negative_float, positive_float, positive_int
from .consumer.config import (DEFAULT_PREFETCH, GRACEFUL_SIGNALS, WORKER_PROCESS, WORKER_TYPES,
                              ConsumerConfig)
from .exceptions import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from .consumer.supervisor import Supervisor

EXIT_OK = 0
EXIT_USAGE = 2
LOG_FORMAT = '%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s'
#: ``-S/--simple``: Huey's simple format, time and message.
SIMPLE_FORMAT, SIMPLE_DATEFMT = '%(asctime)s %(message)s', '%H:%M:%S'
#: Worker types Huey has and we do not; refused in one line.
GREENLET = 'greenlet'


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``queue-consumer``."""
    parser = argparse.ArgumentParser(
        prog='queue-consumer',
        description='Run workers and a scheduler for the TaskQueue named by APP '
                    '(module.attribute, importable from the current directory).')
    parser.add_argument('app', metavar='APP.MODULE.QUEUE_OBJECT',
                        help='dotted path of the TaskQueue, e.g. myapp.tasks.huey')
    add = parser.add_argument
    add('-w', '--workers', type=positive_int, default=1, help='number of workers (default 1)')
    add('-k', '--worker-type', choices=WORKER_TYPES + (GREENLET,), default=WORKER_PROCESS,
        help='worker processes (default) or threads (greenlet is not supported)')
    add('-d', '--delay', type=positive_float, default=0.1, metavar='SECONDS',
        help='first retry delay when the storage is unreachable (default 0.1; workers '
        'never poll an empty queue, they wait on the storage)')
    add('-m', '--max-delay', type=positive_float, default=5.0, metavar='SECONDS',
        help='longest retry delay when the storage is unreachable (default 5)')
    add('-b', '--backoff', type=positive_float, default=2.0, metavar='FACTOR',
        help='growth of that delay after each failure, at least 1 (default 2)')
    add('--bus', metavar='ENDPOINT', help='publish signals to the broker ingest ENDPOINT')
    add('--curve-server-key', metavar='FILE_OR_KEY',
        help="with --bus: the broker's public key (NAME.key file or 40-character Z85 text)")
    add('--curve-keypair', metavar='FILE',
        help='with --bus: this consumer\'s key pair (a NAME.key_secret file)')
    add('--broker', action='store_true',
        help='host a signal broker in a child process (publishing to it unless --bus)')
    add('-n', '--no-periodic', dest='periodic', action='store_false',
        help='do not enqueue periodic tasks')
    add('-s', '--scheduler-interval', type=positive_float, default=1.0, metavar='SECONDS',
        help='how often the schedule is checked (default 1)')
    health = parser.add_mutually_exclusive_group()
    health.add_argument('-c', '--health-check-interval', type=positive_float, default=10.0,
                        metavar='SECONDS', help='check for stuck workers every SECONDS '
                        '(default 10)')
    health.add_argument('-C', '--disable-health-check', action='store_true',
                        help='do not check for stuck workers (dead ones are still replaced)')
    add('--lease', type=positive_float, default=30.0, metavar='SECONDS',
        help='in-flight lease, renewed every third of it (default 30)')
    add('--requeue-interrupted', action='store_true',
        help='put interrupted tasks back on the queue (INTERRUPTED, then ENQUEUED)')
    add('-f', '--flush-locks', action='store_true', help='flush task locks at start')
    add('-L', '--extra-locks', metavar='NAMES',
        help='further locks to flush at start, separated by commas')
    add('-M', '--max-tasks', type=positive_int, metavar='N',
        help='recycle a worker after N tasks')
    add('--prefetch', type=positive_int, default=DEFAULT_PREFETCH, metavar='N',
        help='tasks a worker claims at once (default %d; 1 turns prefetch off)'
        % DEFAULT_PREFETCH)
    add('-t', '--shutdown-timeout', type=non_negative_float, metavar='SECONDS',
        help='longest a graceful stop waits before interrupting running tasks')
    add('-g', '--graceful-signal', choices=GRACEFUL_SIGNALS, default='INT',
        help='the signal that stops gracefully, INT (default) or TERM; the other one '
        'interrupts running tasks')
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    verbosity.add_argument('-q', '--quiet', action='store_true', help='warnings and errors only')
    add('-l', '--logfile', metavar='FILE', help='log to FILE instead of standard error')
    add('-S', '--simple', action='store_true', help='simple log format (time and message)')
    return parser


def config_from_args(args: argparse.Namespace) -> ConsumerConfig:
    """The ``ConsumerConfig`` parsed arguments describe."""
    return ConsumerConfig(
        workers=args.workers, worker_type=args.worker_type, bus=args.bus, broker=args.broker,
        curve_server_key=args.curve_server_key, curve_keypair=args.curve_keypair,
        periodic=args.periodic, scheduler_interval=args.scheduler_interval,
        health_check_interval=None if args.disable_health_check else args.health_check_interval,
        lease=args.lease, requeue_interrupted=args.requeue_interrupted,
        flush_locks=args.flush_locks, max_tasks=args.max_tasks, prefetch=args.prefetch,
        shutdown_timeout=args.shutdown_timeout,
        extra_locks=tuple(n.strip() for n in (args.extra_locks or '').split(',') if n.strip()),
        backoff_initial=args.delay, backoff_max=args.max_delay, backoff_factor=args.backoff,
        graceful_signal=args.graceful_signal)


def setup_logging(args: argparse.Namespace) -> logging.Handler:
    """Send the ``queue_core`` logger to standard error or ``-l FILE`` at the chosen level."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler: logging.Handler
    if args.logfile:
        handler = logging.FileHandler(args.logfile)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(SIMPLE_FORMAT, SIMPLE_DATEFMT) if args.simple
                         else logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger('queue_core')
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, load the app and run the consumer; return the exit status.

    After SIGHUP the consumer stops gracefully and executes itself again with the same
    arguments (as Huey's does), so new application code is loaded."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its message (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.worker_type == GREENLET:
        return _error('greenlet workers are not supported; use -k thread for tasks that '
                      'wait on I/O, or -k process (the default)')
    try:
        config = config_from_args(args)
    except ConfigurationError as exc:  # option values that do not fit together
        parser.print_usage(sys.stderr)
        return _error(str(exc))
    handler = setup_logging(args)
    try:
        supervisor = _load(args.app, config)
        if supervisor is None:
            return EXIT_USAGE
        supervisor.reexec_on_hup = True
        status = _run(supervisor)
    finally:
        logging.getLogger('queue_core').removeHandler(handler)
        handler.close()
    if status == EXIT_OK and supervisor.reexec_requested:
        reexec(sys.argv[1:] if argv is None else argv)
    return status


def _error(message: str, details: str = '') -> int:
    """Print one error line (and ``details`` under it); the usage-error exit status."""
    print('queue-consumer: error: %s' % message, file=sys.stderr)
    if details:
        print(details, end='', file=sys.stderr)
    return EXIT_USAGE


def _load(app: str, config: ConsumerConfig) -> Supervisor | None:
    """The supervisor for ``app``, or ``None`` after printing why it cannot run."""
    from .consumer.loader import AppImportError, load_queue
    from .consumer.supervisor import Supervisor
    try:
        supervisor = Supervisor(load_queue(app), config)
        supervisor.check()
    except AppImportError as exc:
        _error(str(exc), exc.details())
        return None
    except ConfigurationError as exc:
        _error(str(exc))
        return None
    return supervisor


def _run(supervisor: Supervisor) -> int:
    """Run the supervisor; a failure to start (a broker that cannot bind) is one line."""
    try:
        return supervisor.run()
    except ConfigurationError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        logging.getLogger('queue_core.consumer').info('interrupted while starting')
        return EXIT_OK


def reexec(argv: Sequence[str]) -> None:
    """Replace this process with a fresh ``queue-consumer`` given ``argv`` (same pid, same
    environment, same working directory); does not return."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, '-m', 'queue_core.cli', *argv])


def entry_point() -> None:
    """Console script ``queue-consumer``."""
    sys.exit(main())


if __name__ == '__main__':
    entry_point()
