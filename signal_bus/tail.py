"""``signal-tail``: follow the bus from a terminal, one flushed line per event.

Readable lines by default (time, signal, task name, id, retries, error message), or one
JSON object per line with the wire map's keys (``--json``). ``--replay N`` starts with the
last N events of the broker's ring; ``--wait ID`` exits at that task's final event: 0 for
``complete``, 1 for any other final event, 3 when ``--timeout`` passes first. On exit
(Ctrl-C, SIGTERM, ``--timeout``) the counts per signal and the events missed go to stderr.
"""
from __future__ import annotations

import argparse
import collections
import json
import signal as os_signal
import sys
import threading
import time
from typing import Any, Iterator, Sequence, TextIO

from queue_core.argtypes import non_negative_int, positive_float
from queue_core.signals import ALL_SIGNALS, SIGNAL_COMPLETE

from .cli_args import add_curve_client_arguments
from .client_events import Event
from .config import DEFAULT_PUBLISH
from .exceptions import BusError
from .subscriber import Subscriber

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
#: Ctrl-C or SIGTERM while ``--wait`` was still waiting (the shell's convention).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``signal-tail``."""
    parser = argparse.ArgumentParser(
        prog='signal-tail',
        description='Follow task events on the signal bus, one line per event.')
    parser.add_argument('--connect', metavar='EP', default=DEFAULT_PUBLISH,
                        help='the broker publish endpoint (default %(default)s)')
    parser.add_argument('--control', metavar='EP',
                        help='the broker control endpoint (default: publish port + 1)')
    parser.add_argument('--signal', metavar='S', nargs='+', action='extend',
                        choices=ALL_SIGNALS, help='only these signals (repeatable)')
    parser.add_argument('--task', metavar='GLOB', nargs='+', action='extend',
                        help='only tasks whose name (module.function) matches a glob')
    parser.add_argument('--id', metavar='ID', nargs='+', action='extend',
                        help='only these task ids')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object per event with the wire keys')
    parser.add_argument('--replay', metavar='N', type=non_negative_int, default=0,
                        help='start with the last N events from the broker ring')
    parser.add_argument('--wait', metavar='ID',
                        help="exit at this task's final event: 0 complete, 1 otherwise")
    parser.add_argument('--timeout', metavar='SECONDS', type=positive_float,
                        help='stop after this long (with --wait: exit status 3)')
    add_curve_client_arguments(parser)
    return parser


def format_line(event: Event) -> str:
    """One readable line: time, signal, task name, id, retries, error message."""
    moment = event.time
    stamp = (moment.astimezone().strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]
             if moment is not None else '-')
    line = '%s  %-12s %s  %s  retries=%s' % (stamp, event.signal, event.name, event.id,
                                              event.get('retries', '-'))
    error = event.error
    if error is not None:
        line += '  %s' % error
    return line


def format_json(event: Event) -> str:
    """One JSON object holding the event's wire keys (meta merged into the body)."""
    return json.dumps(event.to_dict(), default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode('utf-8', 'replace')
    return repr(value)


class Tally:
    """Counts of printed events per signal, and the summary printed on exit."""

    def __init__(self) -> None:
        self.by_signal: collections.Counter[str] = collections.Counter()

    def add(self, event: Event) -> None:
        """Count one printed event."""
        self.by_signal[event.signal] += 1

    def summary(self, stats: dict[str, int]) -> str:
        """``signal-tail: N events (signal n, ...); M missed`` plus restarts if any."""
        parts = ', '.join('%s %d' % item for item in sorted(self.by_signal.items()))
        missed = stats.get('lost', 0) + stats.get('publisher_lost', 0)
        text = 'signal-tail: %d events (%s); %d missed' % (
            sum(self.by_signal.values()), parts or 'none', missed)
        if stats.get('epoch_changes'):
            text += '; broker restarted %d time(s)' % stats['epoch_changes']
        return text


class _Terminate(Exception):
    """Raised by the SIGTERM handler so that the tail ends like on Ctrl-C."""


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run ``signal-tail``; returns the exit status (2 for bad arguments)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        sub = Subscriber(args.connect, control=args.control, signals=args.signal,
                         tasks=args.task, curve_server_key=args.curve_server_key,
                         curve_keypair=args.curve_keypair)
    except BusError as exc:
        print('signal-tail: %s' % exc, file=err)
        return EXIT_USAGE
    tally = Tally()
    sub.on_loss(lambda count, first, last: print(_loss_text(count, first, last),
                                                 file=err, flush=True))
    with _terminate_on_sigterm():
        try:
            return _follow(sub, args, tally, out, err)
        except KeyboardInterrupt:
            return EXIT_OK if args.wait is None else EXIT_INTERRUPTED
        except _Terminate:
            return EXIT_OK if args.wait is None else EXIT_TERMINATED
        except BrokenPipeError:
            return EXIT_OK
        finally:
            print(tally.summary(sub.stats()), file=err, flush=True)
            sub.close()


def _loss_text(count: int | None, first: int | None, last: int | None) -> str:
    if count is None:
        return 'signal-tail: the broker restarted; numbering starts again'
    if first is None:
        return 'signal-tail: a publisher lost %d events before the broker' % count
    return 'signal-tail: %d events lost (seq %d..%d)' % (count, first, last)


def _follow(sub: Subscriber, args: argparse.Namespace, tally: Tally, out: TextIO,
            err: TextIO) -> int:
    """Print events until the wait ends, the timeout passes or the tail is stopped."""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    if args.replay or args.wait:
        if not _connect(sub, deadline):
            return EXIT_TIMEOUT if args.wait else EXIT_OK
        try:
            sub.replay_recent(None if args.wait else args.replay)
        except (BusError, TimeoutError) as exc:
            print('signal-tail: cannot read the broker ring (%s); following live events only'
                  % exc, file=err, flush=True)
    ids = set(args.id or ()) | ({args.wait} if args.wait else set())
    render = format_json if args.json else format_line
    for event in _events(sub, deadline):
        if ids and event.id not in ids:
            continue
        tally.add(event)
        out.write(render(event) + '\n')
        out.flush()
        if args.wait and event.id == args.wait and event.get('final') is True:
            return EXIT_OK if event.signal == SIGNAL_COMPLETE else EXIT_FAILED
    return EXIT_TIMEOUT if args.wait else EXIT_OK


def _connect(sub: Subscriber, deadline: float | None) -> bool:
    """Wait for the broker (forever without a deadline); False when the deadline passes."""
    while True:
        step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
        try:
            sub.wait_connected(step)
            return True
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                return False


def _events(sub: Subscriber, deadline: float | None) -> Iterator[Event]:
    """The subscriber's events until ``deadline`` (forever without one)."""
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        event = sub.receive(timeout=0.5 if remaining is None else min(remaining, 0.5))
        if event is not None:
            yield event
        elif sub.closed:
            return


class _terminate_on_sigterm:
    """Within the block, SIGTERM raises ``_Terminate`` (main thread only)."""

    def __enter__(self) -> None:
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            self._previous = os_signal.signal(os_signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise _Terminate()

    def __exit__(self, *exc_info: Any) -> None:
        if self._installed:
            os_signal.signal(os_signal.SIGTERM, self._previous)


def entry_point() -> None:
    """Console script ``signal-tail``."""
    sys.exit(main(sys.argv[1:]))

if __name__ == '__main__':  # pragma: no cover
    entry_point()
