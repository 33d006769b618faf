"""Benchmark 4: enqueue from one process, ours vs Huey: N single calls, and ``.map()`` of N.

Each call is what a user writes (``noop(i)``, ``noop.map(range(n))``); no consumer runs.
"""
from __future__ import annotations

import argparse
import gc
import time
from typing import Any, Callable

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.common import (HUEY, OURS, Figure, alternate, median,  # noqa: E402
                                  paired_ratio)
from scripts.bench.drain import app_for  # noqa: E402
from scripts.support.redis_server import RedisServer  # noqa: E402


def timed_enqueue(side: str, redis: RedisServer, n: int, mapped: bool) -> float:
    """Tasks per second enqueuing ``n`` no-op tasks one call at a time or with ``map``."""
    redis.flushall()
    queue, noop = app_for(side, redis.url)
    gc.collect()  # the previous round's garbage is not this round's cost
    started = time.perf_counter()
    if mapped:
        noop.map(range(n))
    else:
        for i in range(n):
            noop(i)
    elapsed = time.perf_counter() - started
    pending = queue.pending_count()
    if pending != n:
        raise RuntimeError('%s: %d tasks pending after enqueueing %d' % (side, pending, n))
    return n / elapsed


def run(rounds: int = 3, n: int = 10000) -> tuple[list[Figure], dict[str, list[float]]]:
    """Single calls and ``map``, both sides, alternating; figures and raw rounds."""
    with RedisServer().start() as redis:
        results = alternate(rounds, {
            'ours single': lambda: timed_enqueue(OURS, redis, n, False),
            'huey single': lambda: timed_enqueue(HUEY, redis, n, False),
            'ours map': lambda: timed_enqueue(OURS, redis, n, True),
            'huey map': lambda: timed_enqueue(HUEY, redis, n, True),
        })
    return figures(results, n), results


def figures(results: dict[str, list[float]], n: int) -> list[Figure]:
    """The table lines of benchmark 4."""
    single_o, single_h = median(results['ours single']), median(results['huey single'])
    map_o, map_h = median(results['ours map']), median(results['huey map'])
    single, single_rounds = paired_ratio(results['ours single'], results['huey single'])
    mapped, map_rounds = paired_ratio(results['ours map'], results['huey map'])
    map_single, map_single_rounds = paired_ratio(results['ours map'], results['ours single'])
    return [
        Figure('4 enqueue', '%d single calls, one process' % n, 'tasks/s', single_o, single_h,
               single, target='>= 1.5x Huey', met=single >= 1.5, note=single_rounds),
        Figure('4 enqueue', '.map() of %d' % n, 'tasks/s', map_o, map_h, mapped,
               note=map_rounds),
        Figure('4 enqueue', '.map() vs single calls (ours)', 'tasks/s', map_o, single_o,
               map_single, ratio_of='map / single', ref_label='single calls',
               target='>= 10x single', met=map_single >= 10.0, note=map_single_rounds),
    ]


def main(argv: list[str] | None = None, run_fn: Callable[..., Any] = run) -> None:
    """Run this benchmark alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('-n', type=int, default=10000)
    args = parser.parse_args(argv)
    for fig in run_fn(args.rounds, args.n)[0]:
        print(fig.line())


if __name__ == '__main__':
    main()
