"""``signal-dashboard``: the history subscriber plus the web server (SPEC §8).

Exit status 0 after Ctrl-C or SIGTERM, 2 for bad arguments, a missing token file, a
non-loopback ``--http`` without a token, or an address that cannot be bound (one line).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal as os_signal
import sys
from typing import Sequence, TextIO

from ..cli_args import add_curve_client_arguments, positive_float, positive_int
from ..config import DEFAULT_PUBLISH
from ..exceptions import BusError
from ..history import DEFAULT_HISTORY, History, Retention
from .config import DEFAULT_HTTP, DashboardConfig
from .recorder import HistoryRecorder, RecorderConfig
from .watch import BusWatch

EXIT_USAGE = 2
logger = logging.getLogger('signal_bus.dashboard')


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``signal-dashboard``."""
    parser = argparse.ArgumentParser(
        prog='signal-dashboard',
        description='Keep a durable history of the signal bus and serve the live view: '
                    'pages, a JSON API, server-sent events and Prometheus metrics.')
    parser.add_argument('--connect', metavar='EP', default=DEFAULT_PUBLISH,
                        help='the broker publish endpoint (default %(default)s)')
    parser.add_argument('--control', metavar='EP',
                        help='the broker control endpoint (default: publish port + 1)')
    parser.add_argument('--history', metavar='URL', default=DEFAULT_HISTORY,
                        help='the history store (default %(default)s)')
    parser.add_argument('--storage', metavar='URL',
                        help="the queue's storage, for its counts and the actions")
    parser.add_argument('--queue', metavar='NAME', help="the TaskQueue's name (with --storage)")
    parser.add_argument('--http', metavar='HOST:PORT', default=DEFAULT_HTTP,
                        help='where to serve (default %(default)s; 0 as port: any free one)')
    parser.add_argument('--retention-hours', metavar='H', type=positive_float, default=48.0)
    parser.add_argument('--max-events', metavar='N', type=positive_int, default=1_000_000)
    parser.add_argument('--keep-failures-hours', metavar='H', type=positive_float,
                        default=168.0)
    parser.add_argument('--max-failures', metavar='N', type=positive_int, default=100_000)
    parser.add_argument('--token-file', metavar='FILE',
                        help='a file holding the token every request but /healthz must carry')
    add_curve_client_arguments(parser)
    return parser


def _config(args: argparse.Namespace) -> DashboardConfig:
    token = None
    if args.token_file:
        try:
            with open(args.token_file, encoding='utf-8') as handle:
                token = handle.read().strip()
        except OSError as exc:
            raise BusError('cannot read the token file: %s' % exc) from None
        if not token:
            raise BusError('the token file %s is empty' % args.token_file)
    return DashboardConfig(
        connect=args.connect, control=args.control, history=args.history,
        storage=args.storage, queue=args.queue, http=args.http, token=token,
        retention=Retention(args.retention_hours, args.max_events, args.keep_failures_hours,
                            args.max_failures),
        curve_server_key=args.curve_server_key, curve_keypair=args.curve_keypair)


def main(argv: Sequence[str] | None = None, stderr: TextIO | None = None) -> int:
    """Run ``signal-dashboard``; returns the exit status."""
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s %(message)s')
    try:
        config = _config(args)
        history = History(config.history, config.retention)
    except (BusError, ValueError) as exc:
        print('signal-dashboard: %s' % exc, file=err)
        return EXIT_USAGE
    try:
        return asyncio.run(_serve(config, history, err))
    except OSError as exc:
        print('signal-dashboard: cannot serve on %s: %s' % (config.http, exc), file=err)
        return EXIT_USAGE


async def _serve(config: DashboardConfig, history: History, err: TextIO) -> int:
    from aiohttp import web

    from .queue_view import QueueView
    from .server import Dashboard, build_app
    queue = QueueView(config.storage, config.queue) if config.storage and config.queue \
        else None
    watch = BusWatch(config.connect, config.control, config.curve_server_key,
                     config.curve_keypair).start()
    recorder = HistoryRecorder(history, RecorderConfig(
        connect=config.connect, control=config.control,
        curve_server_key=config.curve_server_key, curve_keypair=config.curve_keypair)).start()
    dash = Dashboard(history, watch, queue, config.token)
    runner = web.AppRunner(build_app(dash), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        port = runner.addresses[0][1]  # the real port when 0 was asked
        print('signal-dashboard: serving http://%s:%d/ (history %s)'
              % (config.host, port, config.history), file=err, flush=True)
        await _until_signalled()
    finally:
        dash.stopping.set()
        await runner.cleanup()
        recorder.stop()
        watch.stop()
        if queue is not None:
            queue.close()
    return 0


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (os_signal.SIGINT, os_signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def entry_point() -> None:
    """Console script ``signal-dashboard``."""
    sys.exit(main(sys.argv[1:]))


if __name__ == '__main__':  # pragma: no cover
    entry_point()
