"""Benchmark 5: enqueue -> blocking result get, sequential round trips with an idle worker.

Each side's consumer runs one process worker; the benchmark process calls ``noop(i)``
and then ``result.get(blocking=True)`` (each queue's default way of waiting), one trip
after the other. A few warm-up trips are not counted.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.common import (HUEY, OURS, Child, Figure, alternate,  # noqa: E402
                                  bench_env, consumer_command, median_of, percentile,
                                  ratio)
from scripts.bench.drain import app_for  # noqa: E402
from scripts.support.redis_server import RedisServer  # noqa: E402

WARMUP = 10
GET_TIMEOUT = 30.0


def latency_once(side: str, redis: RedisServer, trips: int) -> dict[str, float]:
    """p50/p99/mean of ``trips`` round trips in milliseconds."""
    redis.flushall()
    _, noop = app_for(side, redis.url)
    consumer = Child(consumer_command(side, 1), env=bench_env(redis.url))
    samples: list[float] = []
    try:
        for i in range(WARMUP + trips):
            started = time.perf_counter()
            value = noop(i).get(blocking=True, timeout=GET_TIMEOUT)
            elapsed = time.perf_counter() - started
            if value is not True:
                raise RuntimeError('%s: trip %d returned %r:\n%s' % (side, i, value,
                                                                      consumer.log()))
            if i >= WARMUP:
                samples.append(elapsed * 1000)
    finally:
        consumer.stop()
    return {'p50': percentile(samples, 0.5), 'p99': percentile(samples, 0.99),
            'mean': sum(samples) / len(samples)}


def run(rounds: int = 3, trips: int = 300) -> tuple[list[Figure], dict[str, list[dict]]]:
    """Both sides, alternating; figures and raw rounds."""
    with RedisServer().start() as redis:
        results = alternate(rounds, {
            OURS: lambda: latency_once(OURS, redis, trips),
            HUEY: lambda: latency_once(HUEY, redis, trips),
        })
    return figures(results, trips), results


def figures(results: dict[str, list[dict[str, float]]], trips: int) -> list[Figure]:
    """The table lines of benchmark 5 (medians over rounds of each round's quantile)."""
    p50_o, p50_h = median_of(results[OURS], 'p50'), median_of(results[HUEY], 'p50')
    p99_o, p99_h = median_of(results[OURS], 'p99'), median_of(results[HUEY], 'p99')
    return [
        Figure('5 latency', 'enqueue -> blocking get, p50 (%d trips)' % trips, 'ms', p50_o,
               p50_h, ratio(p50_o, p50_h), target='p50 < 2 ms', met=p50_o < 2.0),
        Figure('5 latency', 'enqueue -> blocking get, p99', 'ms', p99_o, p99_h,
               ratio(p99_o, p99_h), target='p99 < 5 ms', met=p99_o < 5.0),
    ]


def main(argv: list[str] | None = None, run_fn: Callable[..., Any] = run) -> None:
    """Run this benchmark alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('-n', '--trips', type=int, default=300)
    args = parser.parse_args(argv)
    for fig in run_fn(args.rounds, args.trips)[0]:
        print(fig.line())


if __name__ == '__main__':
    main()
