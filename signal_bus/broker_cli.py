"""``signal-broker``: run a standalone signal broker (SPEC §6).

Exit status 0 after SIGINT or SIGTERM, 2 for bad arguments (or a key file that does not
load, or an endpoint that cannot be bound).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Sequence

import zmq

from .broker import Broker
from .cli_args import non_negative_float, positive_int
from .config import (DEFAULT_CONTROL, DEFAULT_HOLD_MS, DEFAULT_INGEST, DEFAULT_MAX_EVENT_BYTES,
                     DEFAULT_MAX_SUBSCRIBERS, DEFAULT_PUBLISH, DEFAULT_RING,
                     DEFAULT_RING_BYTES, DEFAULT_SUBSCRIBER_HWM, BrokerConfig)
from .exceptions import BusConfigError

logger = logging.getLogger('signal_bus.broker')


def build_parser() -> argparse.ArgumentParser:
    """The ``signal-broker`` argument parser."""
    parser = argparse.ArgumentParser(
        prog='signal-broker',
        description='Order, number and fan out queue signal events (binds loopback by '
                    'default; see docs/bus-wire.md).')
    parser.add_argument('--ingest', default=DEFAULT_INGEST, metavar='EP',
                        help='PULL endpoint publishers push to (default %(default)s)')
    parser.add_argument('--publish', default=DEFAULT_PUBLISH, metavar='EP',
                        help='XPUB endpoint subscribers connect to (default %(default)s)')
    parser.add_argument('--control', default=DEFAULT_CONTROL, metavar='EP',
                        help='ROUTER endpoint for replay and stats (default %(default)s)')
    parser.add_argument('--ring', type=positive_int, default=DEFAULT_RING, metavar='N',
                        help='events kept for replay (default %(default)s)')
    parser.add_argument('--ring-bytes', type=positive_int, default=DEFAULT_RING_BYTES,
                        metavar='B', help='bytes of events kept for replay, oldest evicted '
                                          'first (default %(default)s)')
    parser.add_argument('--hold-ms', type=non_negative_float, default=DEFAULT_HOLD_MS,
                        metavar='MS', help='longest hold-back of an early event '
                                           '(default %(default)s)')
    parser.add_argument('--max-event-bytes', type=positive_int,
                        default=DEFAULT_MAX_EVENT_BYTES, metavar='N',
                        help='larger events (header + body) are dropped and counted '
                             '(default %(default)s)')
    parser.add_argument('--subscriber-hwm', type=positive_int,
                        default=DEFAULT_SUBSCRIBER_HWM, metavar='N',
                        help="each subscriber's send queue, in events; a slow subscriber "
                             'loses what overflows and repairs it from the ring '
                             '(default %(default)s)')
    parser.add_argument('--max-subscribers', type=positive_int,
                        default=DEFAULT_MAX_SUBSCRIBERS, metavar='N',
                        help='connected subscribers; more are refused and counted '
                             '(default %(default)s)')
    parser.add_argument('--curve-secret-key', metavar='FILE',
                        help="the broker's key pair (NAME.key_secret): enables CURVE")
    parser.add_argument('--curve-authorized-keys', metavar='DIR',
                        help='directory of client public keys (*.key); others are refused')
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument('-v', '--verbose', action='store_true', help='log debug detail')
    verbosity.add_argument('-q', '--quiet', action='store_true', help='log warnings only')
    return parser


def config_from_args(args: argparse.Namespace) -> BrokerConfig:
    """The ``BrokerConfig`` the parsed arguments describe."""
    return BrokerConfig(ingest=args.ingest, publish=args.publish, control=args.control,
                        ring=args.ring, ring_bytes=args.ring_bytes, hold_ms=args.hold_ms,
                        max_event_bytes=args.max_event_bytes,
                        subscriber_hwm=args.subscriber_hwm,
                        max_subscribers=args.max_subscribers,
                        curve_secret_key=args.curve_secret_key,
                        curve_authorized_keys=args.curve_authorized_keys)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the broker until SIGINT/SIGTERM; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        broker = Broker(config_from_args(args))
    except BusConfigError as exc:
        print('signal-broker: %s' % exc, file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, lambda *_: broker.stop())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        broker.run()
    except (BusConfigError, OSError, zmq.ZMQError) as exc:
        print('signal-broker: %s' % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info('signal broker stopped')
    return 0


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == '__main__':  # pragma: no cover
    entry_point()
