"""Run every benchmark, print each figure with its ratio, and write docs/benchmarks.md
(and docs/bench-chart.png).

    python scripts/bench/run_all.py            # the full run (about 5 minutes on 2 cores)
    python scripts/bench/run_all.py --quick    # tiny counts, one round: checks the harness
    python scripts/bench/run_all.py --only drain,latency --no-write
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from typing import Any, Callable

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench import (broker_bench, bus_cost, drain, enqueue, latency,  # noqa: E402
                           report, round_trips, subscriber_bench)
from scripts.bench.common import BENCH_DIR, Figure, log  # noqa: E402
from scripts.support import REPO_ROOT  # noqa: E402

CORES = 2


def plan(rounds: int, quick: bool) -> dict[str, Callable[[], tuple[list[Figure], Any]]]:
    """Every benchmark by name, with full or tiny counts."""
    if quick:
        return {
            'drain': lambda: drain.run(1, 200),
            'trace': lambda: round_trips.run(100),
            'bus': lambda: bus_cost.run(1, 200),
            'enqueue': lambda: enqueue.run(1, 500),
            'latency': lambda: latency.run(1, 20),
            'broker': lambda: broker_bench.run(1, 3000, 3000, 1000),
            'subscriber': lambda: subscriber_bench.run(1, 5000),
            'sqlite': lambda: drain.run_sqlite(1, 500),
        }
    # Drains and enqueues are short and their ratios the noisiest figures: more rounds.
    return {
        'drain': lambda: drain.run(rounds + 4, 5000),
        'trace': lambda: round_trips.run(500),
        'bus': lambda: bus_cost.run(rounds + 2, 5000),
        'enqueue': lambda: enqueue.run(rounds + 2, 10000),
        'latency': lambda: latency.run(rounds, 300),
        'broker': lambda: broker_bench.run(rounds),
        'subscriber': lambda: subscriber_bench.run(rounds + 2),
        'sqlite': lambda: drain.run_sqlite(rounds),
    }


def pin_cores(count: int) -> None:
    """Run on ``count`` cores (children inherit it), as the targets are stated for."""
    if hasattr(os, 'sched_getaffinity'):
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > count:
            os.sched_setaffinity(0, cores[:count])


def setup() -> None:
    """The benchmarks' own setup step: Huey 3.5.4 and matplotlib, when missing."""
    subprocess.run(['bash', os.path.join(BENCH_DIR, 'setup.sh')], check=True,
                   env=dict(os.environ, PYTHON=sys.executable))


def order(figures: list[Figure]) -> list[Figure]:
    """Table order: by benchmark number, keeping each benchmark's own order."""
    return sorted(figures, key=lambda f: f.bench.split()[0])


def run_benchmarks(chosen: dict[str, Callable[[], tuple[list[Figure], Any]]]
                   ) -> tuple[list[Figure], list[str]]:
    """Run each benchmark; a failing one is reported and the others still run."""
    figures: list[Figure] = []
    failures: list[str] = []
    for name, bench in chosen.items():
        log('benchmark %s', name)
        try:
            figs, _ = bench()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            log('benchmark %s failed: %s: %s', name, type(exc).__name__, exc)
            first_line = str(exc).splitlines()[0] if str(exc) else ''
            failures.append('%s: %s: %s' % (name, type(exc).__name__, first_line))
            continue
        for fig in figs:
            log(fig.line())
        figures += figs
    return figures, failures


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the chosen benchmarks, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3,
                        help='rounds per side (default 3; more for drains and enqueues)')
    parser.add_argument('--quick', action='store_true', help='tiny counts, one round')
    parser.add_argument('--only', help='comma-separated: drain,trace,bus,enqueue,latency,broker,subscriber,sqlite')
    parser.add_argument('--no-write', action='store_true', help='print only')
    parser.add_argument('--no-setup', action='store_true', help='skip the install step')
    parser.add_argument('--out', default=os.path.join(REPO_ROOT, 'docs', 'benchmarks.md'))
    parser.add_argument('--chart', default=os.path.join(REPO_ROOT, 'docs', 'bench-chart.png'))
    args = parser.parse_args(argv)
    if not args.no_setup:
        setup()
    pin_cores(CORES)
    chosen = plan(args.rounds, args.quick)
    if args.only:
        names = args.only.split(',')
        unknown = set(names) - set(chosen)
        if unknown:
            parser.error('unknown benchmark(s) %s; choose from %s'
                         % (', '.join(sorted(unknown)), ', '.join(chosen)))
        chosen = {name: chosen[name] for name in names}
    load_start = os.getloadavg()[0]
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()
    figures, failures = run_benchmarks(chosen)
    figures = order(figures)
    elapsed = time.monotonic() - started
    print('\n'.join(report.summary(figures)))
    for failure in failures:
        print('FAILED ' + failure)
    if not args.no_write:
        drew = report.chart(figures, args.chart)
        rel_chart = os.path.relpath(args.chart, os.path.dirname(os.path.abspath(args.out)))
        command = 'python scripts/bench/run_all.py' + (' ' + ' '.join(argv or sys.argv[1:])
                                                       if (argv or sys.argv[1:]) else '')
        report.write(args.out, report.markdown(figures, command, started_at, elapsed,
                                               rel_chart if drew else None,
                                               (load_start, os.getloadavg()[0]), failures))
        log('wrote %s%s', args.out, ' and ' + args.chart if drew else '')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
