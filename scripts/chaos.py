"""Fault and bad-input campaign: prove that nothing is lost and no one gets in.

    python scripts/chaos.py --minutes 3         # the full campaign (docs/chaos.md)
    python scripts/chaos.py --short             # every fault once, about 40 s (CI)
    python scripts/chaos.py --seconds 60 --seed 7 --keep
    python scripts/chaos.py --abuse             # the abusive-clients phase (about 1 min)
    python scripts/chaos.py --abuse --short     # the same at a fifth of the scale (CI)

Runs a real consumer (2 process workers, Redis with an append-only file, a broker and two
subscribers, all on loopback) under a steady stream of tasks, injects faults in a seeded
order, drains, reconciles storage against the subscribers' logs and prints the table.
Exit status 0 when nothing vanished, no loss went unreported and no task ran twice without
an INTERRUPTED; 1 otherwise; 2 when the system could not be started. ``--abuse`` runs the
abusive-clients phase instead (a broker, a healthy publisher and subscriber, and hostile
clients; see docs/chaos.md): 0 when the broker survived every attack under its memory
ceiling and the healthy subscriber saw every event or a counted loss.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
from typing import Sequence

if __package__ in (None, ''):   # run as a file: the repository root, so scripts.* imports
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scripts.chaos.abuse import run_abuse, scaled  # noqa: E402
from scripts.chaos.abuse import table as abuse_table  # noqa: E402
from scripts.chaos.campaign import run, say  # noqa: E402
from scripts.chaos.injectors import INJECTORS  # noqa: E402
from scripts.chaos.report import table  # noqa: E402
from scripts.chaos.rig import Settings  # noqa: E402

#: The CI form: every fault once, small floods, a short drain.
SHORT = dict(seconds=10.0, flood_publishers=2, flood_count=3000,
             bad_per_kind=10, pause=(2.0, 2.5), outage=(0.3, 0.8), gap=(0.1, 0.4),
             drain_timeout=45.0)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog='chaos.py', description=__doc__.split('\n')[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument('--minutes', type=float, help='how long to inject faults')
    length.add_argument('--seconds', type=float, help='the same, in seconds')
    length.add_argument('--short', action='store_true',
                        help='the CI form: every fault once, then drain (about 20 s)')
    parser.add_argument('--abuse', action='store_true',
                        help='run the abusive-clients phase instead of the fault campaign')
    parser.add_argument('--seed', type=int, default=1, help='seed of the fault order')
    parser.add_argument('--rate', type=float, default=6.0, help='tasks enqueued a second')
    parser.add_argument('--socket-timeout', type=float,
                        help='Redis client timeout in seconds (default 1.5, shorter than '
                             'the stalls)')
    parser.add_argument('--settle-floods', action='store_true',
                        help='flood publishers repeat their last event until it leaves')
    parser.add_argument('--workdir', help='keep logs here (default: a temporary directory)')
    parser.add_argument('--keep', action='store_true', help='keep the temporary directory')
    return parser


def settings_from(args: argparse.Namespace) -> tuple[Settings, int]:
    """The settings and the least number of injections the arguments ask for."""
    options: dict = dict(seed=args.seed, rate=args.rate)
    if args.short:
        options.update(SHORT, max_injections=len(INJECTORS))
    else:
        options['seconds'] = args.seconds if args.seconds is not None else 60 * (
            args.minutes or 3)
    if args.settle_floods:
        options['flood_settle'] = True
    if args.socket_timeout is not None:
        options['socket_timeout'] = args.socket_timeout
    return Settings(**options), len(INJECTORS) if args.short else 0


def header(settings: Settings) -> str:
    """Date, machine and settings of the run."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    return ('Chaos campaign %s on %s (%s, %d cores, Python %s): %.0f s of faults, seed %d, '
            '%.0f tasks/s, %d workers, lease %.0f s, Redis client timeout %.1f s, stalls '
            '%.1f-%.1f s'
            % (now, platform.node(), platform.machine(), os.cpu_count() or 0,
               platform.python_version(), settings.seconds, settings.seed, settings.rate,
               settings.workers, settings.lease, settings.socket_timeout, *settings.pause))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the campaign; print the table; return the exit status."""
    args = build_parser().parse_args(argv)
    settings, min_injections = settings_from(args)
    workdir = args.workdir or tempfile.mkdtemp(prefix='chaos-')
    os.makedirs(workdir, exist_ok=True)
    if args.abuse:
        return abuse(args, workdir)
    try:
        result = run(settings, workdir, min_injections)
    except RuntimeError as exc:
        say('could not start: %s' % exc)
        return 2
    print(table(result, header(settings)), flush=True)
    if args.workdir or args.keep or not result.passed:
        say('logs kept in %s' % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result.passed else 1


def abuse(args: argparse.Namespace, workdir: str) -> int:
    """The abusive-clients phase; its table; the exit status."""
    factor = 0.2 if args.short else 1.0
    try:
        result = run_abuse(workdir, scaled(factor), args.seed, say)
    except RuntimeError as exc:
        say('could not start: %s' % exc)
        return 2
    now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    print(abuse_table(result, 'Abusive clients %s on %s (%d cores, Python %s): scale %.1f, '
                              'seed %d' % (now, platform.node(), os.cpu_count() or 0,
                                           platform.python_version(), factor, args.seed)),
          flush=True)
    if args.workdir or args.keep or not result.passed:
        say('logs kept in %s' % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result.passed else 1


if __name__ == '__main__':
    sys.exit(main())
