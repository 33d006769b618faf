#!/usr/bin/env python3
"""Alert on failed and interrupted tasks, from any host that can reach the broker.

Copy this file and change ``alert()`` to page, mail or chat. As it is, it prints one line
per alert (with the traceback under ``--traceback``) and, with ``--webhook URL``, POSTs
the event as JSON. Losses on the bus are alerted too: an error may hide in them.

    python scripts/subscribers/error_notifier.py --connect tcp://broker-host:7558 \\
        --curve-server-key broker.key --curve-keypair me.key_secret
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import urllib.request
from typing import Sequence

from signal_bus import Subscriber
from signal_bus.cli_args import add_curve_client_arguments
from signal_bus.event import Event

ALERT_SIGNALS = ('error', 'interrupted')


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description='Alert on error and interrupted tasks.')
    parser.add_argument('--connect', default='tcp://127.0.0.1:7558', metavar='EP',
                        help='broker publish endpoint (default %(default)s)')
    parser.add_argument('--control', metavar='EP',
                        help='broker control endpoint (default: publish port + 1)')
    parser.add_argument('--task', action='append', metavar='GLOB',
                        help='only tasks whose name matches (repeatable)')
    parser.add_argument('--final-only', action='store_true',
                        help='skip errors that will be retried')
    parser.add_argument('--traceback', action='store_true', help='print tracebacks too')
    parser.add_argument('--webhook', metavar='URL', help='POST each alert there as JSON')
    add_curve_client_arguments(parser)
    return parser


class Notifier:
    """Turns events into alerts: a printed line, and a webhook call when configured."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def on_event(self, signal: str, task: Event, *extra: object) -> None:
        """Handler for ``error`` and ``interrupted`` events."""
        if self.args.final_only and not task.final:
            return
        what = 'FAILED' if signal == 'error' else 'INTERRUPTED'
        detail = ' %s' % task.error if task.error else ''
        retry = '' if task.final else ' (will retry, %s left)' % task.retries
        self.alert('%s %s %s on %s pid %s%s%s' % (what, task.name, task.id, task.host,
                                                  task.pid, detail, retry), task)

    def on_loss(self, count: int | None, first_seq: int | None,
                last_seq: int | None) -> None:
        """Handler for losses on the bus: say so, since an error may be among them."""
        if count is None:
            self.alert('BUS the broker restarted: events around the restart may be missing')
        else:
            self.alert('BUS %d events were lost: some failures may not have been reported'
                       % count)

    def alert(self, text: str, event: Event | None = None) -> None:
        """Print one alert line (and call the webhook). Change this to suit your team."""
        print(text, flush=True)
        if event is not None and self.args.traceback and event.error is not None:
            print(event.error.traceback or '', flush=True)
        if self.args.webhook:
            self._post({'text': text, 'event': event.to_dict() if event else None})

    def _post(self, payload: dict) -> None:
        request = urllib.request.Request(
            self.args.webhook, data=json.dumps(payload, default=repr).encode(),
            headers={'Content-Type': 'application/json'}, method='POST')
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except OSError as exc:
            logging.warning('webhook %s failed: %s', self.args.webhook, exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until Ctrl-C or SIGTERM."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    notifier = Notifier(args)
    sub = Subscriber(args.connect, control=args.control, signals=ALERT_SIGNALS,
                     tasks=args.task, curve_server_key=args.curve_server_key,
                     curve_keypair=args.curve_keypair)
    sub.signal(*ALERT_SIGNALS)(notifier.on_event)
    sub.on_loss(notifier.on_loss)
    signal.signal(signal.SIGTERM, lambda *_: sub.close())
    logging.info('watching %s for %s', args.connect, ', '.join(ALERT_SIGNALS))
    sub.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
