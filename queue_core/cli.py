"""``queue-consumer``: run the consumer for an application's ``TaskQueue``.

``build_parser()`` and ``main(argv) -> int`` make the command testable in-process;
``entry_point()`` is the console script.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .argtypes import non_negative_float, positive_float, positive_int
from .consumer.config import WORKER_PROCESS, WORKER_TYPES, ConsumerConfig
from .exceptions import ConfigurationError

EXIT_OK = 0
EXIT_USAGE = 2
LOG_FORMAT = '%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s'


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
    add('-k', '--worker-type', choices=WORKER_TYPES, default=WORKER_PROCESS,
        help='worker processes (default) or threads')
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
    add('--max-tasks', type=positive_int, metavar='N', help='recycle a worker after N tasks')
    add('--shutdown-timeout', type=non_negative_float, metavar='SECONDS',
        help='longest a graceful stop waits before interrupting running tasks')
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    verbosity.add_argument('-q', '--quiet', action='store_true', help='warnings and errors only')
    add('-l', '--logfile', metavar='FILE', help='log to FILE instead of standard error')
    return parser


def config_from_args(args: argparse.Namespace) -> ConsumerConfig:
    """The ``ConsumerConfig`` parsed arguments describe."""
    return ConsumerConfig(
        workers=args.workers, worker_type=args.worker_type, bus=args.bus, broker=args.broker,
        curve_server_key=args.curve_server_key, curve_keypair=args.curve_keypair,
        periodic=args.periodic, scheduler_interval=args.scheduler_interval,
        health_check_interval=None if args.disable_health_check else args.health_check_interval,
        lease=args.lease, requeue_interrupted=args.requeue_interrupted,
        flush_locks=args.flush_locks, max_tasks=args.max_tasks,
        shutdown_timeout=args.shutdown_timeout)


def setup_logging(args: argparse.Namespace) -> logging.Handler:
    """Send the ``queue_core`` logger to standard error or ``-l FILE`` at the chosen level."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler: logging.Handler
    if args.logfile:
        handler = logging.FileHandler(args.logfile)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger('queue_core')
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, load the app and run the consumer; return the exit status."""
    from .consumer.loader import load_queue
    from .consumer.supervisor import Supervisor

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its message (or --help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = setup_logging(args)
    try:
        try:
            config = config_from_args(args)
            queue = load_queue(args.app)
            supervisor = Supervisor(queue, config)
            supervisor.check()
        except ConfigurationError as exc:
            parser.print_usage(sys.stderr)
            print('queue-consumer: error: %s' % exc, file=sys.stderr)
            return EXIT_USAGE
        try:
            return supervisor.run()
        except ConfigurationError as exc:
            print('queue-consumer: error: %s' % exc, file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
            logging.getLogger('queue_core.consumer').info('interrupted while starting')
            return EXIT_OK
    finally:
        logging.getLogger('queue_core').removeHandler(handler)
        handler.close()


def entry_point() -> None:
    """Console script ``queue-consumer``."""
    sys.exit(main())


if __name__ == '__main__':
    entry_point()
