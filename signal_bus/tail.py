"""``signal-tail``: follow the bus from a terminal, one flushed line per event.

Readable lines by default (time, signal, task name, id, retries, error message), or JSON
lines (``--json``: one JSON object per line with the wire map's keys). ``--replay N`` starts
with the last N events of the broker's ring; ``--wait ID`` exits at that task's final event:
0 for ``complete``, 1 for any other final event, 3 when ``--timeout`` passes first. After a
final ``interrupted`` it waits ``--grace`` seconds, since the task may be reopened (a later
event of the same id, such as the ``enqueued`` of a handler that re-enqueues it), and then
follows it to its next final event. Exit status 4 means no broker was ever heard before
``--timeout``. A broker silent for 3 s, and heard again, gets one stderr line each; on exit
(Ctrl-C, SIGTERM, ``--timeout``) the counts per signal and the events missed go to stderr.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import signal as os_signal
import sys
import threading
import time
from typing import Any, Iterator, Sequence, TextIO

from queue_core.signals import ALL_SIGNALS, SIGNAL_COMPLETE, SIGNAL_INTERRUPTED

from .cli_args import (add_curve_client_arguments, endpoint, non_negative_float,
                       non_negative_int, positive_float)
from .event import Event
from .config import DEFAULT_PUBLISH
from .exceptions import BusError
from .subscriber import Subscriber

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
#: ``--timeout`` passed and no broker was ever heard (nothing answers at ``--connect``).
EXIT_NO_BROKER = 4
#: Ctrl-C or SIGTERM while ``--wait`` was still waiting (the shell's convention).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``signal-tail``."""
    parser = argparse.ArgumentParser(
        prog='signal-tail',
        description='Follow task events on the signal bus, one line per event.')
    parser.add_argument('--connect', metavar='EP', default=DEFAULT_PUBLISH, type=endpoint,
                        help='the broker publish endpoint (default %(default)s)')
    parser.add_argument('--control', metavar='EP', type=endpoint,
                        help='the broker control endpoint (default: publish port + 1)')
    parser.add_argument('--signal', metavar='S', nargs='+', action='extend',
                        choices=ALL_SIGNALS, help='only these signals (repeatable)')
    parser.add_argument('--task', metavar='GLOB', nargs='+', action='extend',
                        help="only tasks whose name matches a glob; names are "
                             "module.function, so 'app.tasks.*' or '*.send_mail'")
    parser.add_argument('--id', metavar='ID', nargs='+', action='extend',
                        help='only these task ids')
    parser.add_argument('--json', action='store_true',
                        help='print JSON lines: one JSON object per event, one per line, '
                             'with the wire keys (for jq and scripts)')
    parser.add_argument('--replay', metavar='N', type=non_negative_int, default=0,
                        help='start with the last N events from the broker ring')
    parser.add_argument('--wait', metavar='ID',
                        help="exit at this task's final event: 0 complete, 1 otherwise")
    parser.add_argument('--grace', metavar='SECONDS', type=non_negative_float, default=2.0,
                        help='with --wait, how long to wait after a final interrupted in case '
                             'the task is re-enqueued (default %(default)s; never past '
                             '--timeout)')
    parser.add_argument('--timeout', metavar='SECONDS', type=positive_float,
                        help='stop after this long (with --wait: exit status 3; 4 when no '
                             'broker was ever heard)')
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


class TaskWait:
    """What ``--wait ID`` has seen of its task, and the exit status once it is decided.

    A final event decides (0 for ``complete``, 1 otherwise), except a final
    ``interrupted``: the task may be reopened (the seed's handler re-enqueues it), so the
    decision waits ``grace`` seconds, and any later event of the task reopens it.
    """

    def __init__(self, task_id: str, grace: float) -> None:
        self.task_id = task_id
        self.grace = grace
        #: ``(until, status)`` while a final ``interrupted`` waits out its grace.
        self.pending: tuple[float, int] | None = None

    def see(self, event: Event, now: float) -> int | None:
        """Take one event of any task; the exit status when it decides one."""
        if event.id != self.task_id:
            return None
        self.pending = None
        if event.get('final') is not True:
            return None
        status = EXIT_OK if event.signal == SIGNAL_COMPLETE else EXIT_FAILED
        if event.signal == SIGNAL_INTERRUPTED and self.grace > 0:
            self.pending = (now + self.grace, status)
            return None
        return status


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
        _check_task_globs(args.task or ())
        sub = Subscriber(args.connect, control=args.control, signals=args.signal,
                         tasks=args.task, curve_server_key=args.curve_server_key,
                         curve_keypair=args.curve_keypair)
    except BusError as exc:
        print('signal-tail: %s' % exc, file=err)
        return EXIT_USAGE
    tally = Tally()
    _report_to(sub, err)
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


def _check_task_globs(globs: Sequence[str]) -> None:
    """Refuse a ``--task`` that can match no task (names are ``module.function``)."""
    for glob in globs:
        if '.' not in glob and not any(char in glob for char in '*?['):
            raise BusError('--task %r matches no task: task names are module.function '
                           "(for example 'app.tasks.%s' or '*.%s')" % (glob, glob, glob))


def _report_to(sub: Subscriber, err: TextIO) -> None:
    """Print a line on stderr for each loss and each start and end of silence."""
    sub.on_loss(lambda count, first, last: print(_loss_text(count, first, last),
                                                 file=err, flush=True))

    @sub.on_silence
    def silence(silent: bool, seconds: float) -> None:
        if silent:
            text = ('signal-tail: no heartbeat from the broker at %s for %.1fs; is it '
                    'running? (still listening)' % (sub.endpoint, seconds))
        else:
            text = ('signal-tail: the broker at %s is heard again after %.1fs of silence'
                    % (sub.endpoint, seconds))
        print(text, file=err, flush=True)


def _loss_text(count: int | None, first: int | None, last: int | None) -> str:
    if count is None:
        return 'signal-tail: the broker restarted; numbering starts again'
    if first is None:
        return 'signal-tail: a publisher lost %d events before the broker' % count
    return 'signal-tail: %d events lost (seq %d..%s)' % (count, first, last)


def _follow(sub: Subscriber, args: argparse.Namespace, tally: Tally, out: TextIO,
            err: TextIO) -> int:
    """Print events until the wait ends, the timeout passes or the tail is stopped."""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    if args.replay or args.wait:
        if not _connect(sub, deadline):
            return _end_status(sub, None, err)
        try:
            sub.replay_recent(None if args.wait else args.replay)
        except (BusError, TimeoutError) as exc:
            print('signal-tail: cannot read the broker ring (%s); following live events only'
                  % exc, file=err, flush=True)
    ids = set(args.id or ()) | ({args.wait} if args.wait else set())
    render = format_json if args.json else format_line
    waiting = TaskWait(args.wait, args.grace) if args.wait else None
    for event in _events(sub, deadline, waiting):
        if ids and event.id not in ids:
            continue
        tally.add(event)
        out.write(render(event) + '\n')
        out.flush()
        status = waiting.see(event, time.monotonic()) if waiting else None
        if status is not None:
            return status
    return _end_status(sub, waiting, err)


def _end_status(sub: Subscriber, waiting: TaskWait | None, err: TextIO) -> int:
    """The exit status when no event decided it: a waited-out grace, no broker, timeout."""
    if waiting is not None and waiting.pending is not None:
        return waiting.pending[1]
    if not sub.heard:
        print('signal-tail: never heard a broker at %s; is signal-broker (or queue-consumer '
              '--broker) running and publishing there?' % sub.endpoint, file=err, flush=True)
        return EXIT_NO_BROKER
    return EXIT_TIMEOUT if waiting is not None else EXIT_OK


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


def _events(sub: Subscriber, deadline: float | None,
            waiting: TaskWait | None) -> Iterator[Event]:
    """The subscriber's events until ``deadline`` or the end of a grace (forever without)."""
    while True:
        ends = [] if deadline is None else [deadline]
        if waiting is not None and waiting.pending is not None:
            ends.append(waiting.pending[0])
        remaining = min(ends) - time.monotonic() if ends else None
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
    # The tail prints its own line for losses and silence; the library's log lines for
    # them would repeat it. Errors (a refused CURVE handshake, a failing handler) still show.
    logging.basicConfig(format='signal-tail: %(message)s', level=logging.WARNING)
    logging.getLogger('signal_bus.subscriber').setLevel(logging.ERROR)
    sys.exit(main(sys.argv[1:]))

if __name__ == '__main__':  # pragma: no cover
    entry_point()
