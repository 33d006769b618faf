"""Benchmark 1: drain pre-enqueued no-op tasks with process workers, ours vs Huey.

One drain: flush Redis, enqueue N no-op tasks (not timed), start the consumer as a user
would, and poll ``result_count()`` until it reaches N. Throughput is counted from the
first stored result (the consumer is up and working) to the last, so process start-up
does not blur it; the wall-clock from the consumer's start is reported beside it. While
the consumer still runs, its processes' memory and CPU are read from ``/proc``, and
Redis's command counters give the commands per task.
"""
from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from typing import Any, Callable

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.common import (HUEY, OURS, Child, Figure, alternate,  # noqa: E402
                                  bench_env, consumer_command, import_app, log, median,
                                  median_of, paired_ratio, ratio)
from scripts.support.procs import children_of, cpu_seconds, rss_kib  # noqa: E402
from scripts.support.redis_server import RedisServer  # noqa: E402

POLL_INTERVAL = 0.005
DRAIN_TIMEOUT = 180.0


def app_for(side: str, url: str) -> tuple[Any, Any]:
    """The (queue, noop task) pair of one side's benchmark app on ``url``."""
    module = import_app('apps.ours' if side == OURS else 'apps.huey_app')
    return module.build(url)


def prefill(side: str, redis: RedisServer, n: int) -> Any:
    """Empty Redis and enqueue ``n`` no-op tasks; returns the side's queue."""
    redis.flushall()
    queue, noop = app_for(side, redis.url)
    noop.map(range(n))
    pending = queue.pending_count()
    if pending != n:
        raise RuntimeError('%s: %d tasks pending after enqueueing %d' % (side, pending, n))
    return queue


def tree_of(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children_of(current)
    return found


def wait_drained(queue: Any, n: int, consumer: Child,
                 interval: float = POLL_INTERVAL) -> tuple[float, int, float, int]:
    """Poll the result count until ``n``: (first seen time, count then, end time, polls)."""
    first_t, first_count, polls = 0.0, 0, 0
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        count = queue.result_count()
        now = time.monotonic()
        polls += 1
        if count and not first_t:
            first_t, first_count = now, count
        if count >= n:
            return first_t, first_count, now, polls
        if now > deadline:
            raise TimeoutError('%d of %d results after %.0f s:\n%s'
                               % (count, n, DRAIN_TIMEOUT, consumer.log()))
        if polls % 200 == 0:
            consumer.check_alive()
        time.sleep(interval)


def drain_once(side: str, redis: RedisServer, n: int, workers: int = 2,
               bus: str | None = None, prefetch: int | None = None) -> dict[str, Any]:
    """One timed drain of ``n`` tasks; returns rate, wall time, memory, CPU and commands.
    ``prefetch`` sets our consumer's ``--prefetch`` (default: the consumer's default)."""
    queue = prefill(side, redis, n)
    redis.reset_stats()
    redis_cpu = cpu_seconds(redis.proc.pid)
    command = consumer_command(side, workers, bus)
    if side == OURS and prefetch is not None:
        command += ['--prefetch', str(prefetch)]
    consumer = Child(command, env=bench_env(redis.url))
    try:
        first_t, first_count, end_t, polls = wait_drained(queue, n, consumer)
        pids = tree_of(consumer.pid)
        rss = {pid: rss_kib(pid) for pid in pids}
        cpu = sum(cpu_seconds(pid) for pid in pids)
        commands = redis.command_stats()
        redis_cpu = cpu_seconds(redis.proc.pid) - redis_cpu
    finally:
        consumer.stop()
    children = [rss[pid] for pid in pids if pid != consumer.pid]
    # The poller's own calls (one per poll) are not the consumer's work.
    consumer_commands = sum(commands.values()) - polls
    return {
        'rate': (n - first_count) / max(end_t - first_t, 1e-9) if first_count < n else 0.0,
        'wall': end_t - consumer.started,
        'worker_rss_kib': median(children) if children else 0,
        'total_rss_kib': sum(rss.values()),
        'processes': len(pids),
        'cpu_us_per_task': cpu * 1e6 / n,
        'redis_cpu_us_per_task': redis_cpu * 1e6 / n,
        'commands_per_task': consumer_commands / n,
        'commands': commands,
    }


def run(rounds: int = 3, n: int = 5000, workers: int = 2,
        prefetch: int | None = None) -> tuple[list[Figure], dict]:
    """Ours and Huey, alternating, ``rounds`` times each; figures and raw rounds."""
    with RedisServer().start() as redis:
        results = alternate(rounds, {
            OURS: lambda: drain_once(OURS, redis, n, workers, prefetch=prefetch),
            HUEY: lambda: drain_once(HUEY, redis, n, workers),
        })
    return figures(results, n, workers), results


def sqlite_drain_once(side: str, folder: str, n: int, workers: int = 2) -> float:
    """Tasks/s draining ``n`` no-op tasks from a fresh SQLite file, from the consumer's
    start (start-up included) until every result is stored: our SQLite storage against
    Huey's ``SqliteHuey``."""
    path = os.path.join(folder, '%s-%d.db' % (side, time.monotonic_ns()))
    if side == OURS:
        queue, noop = import_app('apps.ours').build('sqlite:///' + path)
        command = consumer_command(OURS, workers)
        env = bench_env('sqlite:///' + path)
    else:
        queue, noop = import_app('apps.huey_sqlite').build(path)
        command = [part if part != 'apps.huey_app.huey' else 'apps.huey_sqlite.huey'
                   for part in consumer_command(HUEY, workers)]
        env = bench_env(BENCH_SQLITE_PATH=path)
    noop.map(range(n))
    consumer = Child(command, env=env)
    try:
        _, _, end_t, _ = wait_drained(queue, n, consumer, interval=0.02)
    finally:
        consumer.stop()
    return n / (end_t - consumer.started)


def run_sqlite(rounds: int = 3, n: int = 10000, workers: int = 2
               ) -> tuple[list[Figure], dict]:
    """The SQLite drain, ours and Huey alternating; its figure and raw rounds."""
    with tempfile.TemporaryDirectory(prefix='bench-sqlite-') as folder:
        results = alternate(rounds, {side: functools.partial(sqlite_drain_once, side, folder,
                                                             n, workers)
                                     for side in (OURS, HUEY)})
    paired, rounds_note = paired_ratio(results[OURS], results[HUEY])
    return [Figure('1 drain', '%d no-op tasks on SQLite, %d process workers, start-up '
                   'included' % (n, workers), 'tasks/s', median(results[OURS]),
                   median(results[HUEY]), paired, target='>= 2x SqliteHuey',
                   met=paired >= 2.0, note=rounds_note)], results


def figures(results: dict[str, list[dict[str, Any]]], n: int, workers: int) -> list[Figure]:
    """The table lines of benchmark 1 (and the consumer part of benchmark 7)."""
    ours, huey = results[OURS], results[HUEY]
    rate_o, rate_h = median_of(ours, 'rate'), median_of(huey, 'rate')
    paired, rounds = paired_ratio([r['rate'] for r in ours], [r['rate'] for r in huey])
    out = [Figure('1 drain', '%d no-op tasks, %d process workers' % (n, workers), 'tasks/s',
                  rate_o, rate_h, paired, target='>= 2x Huey', met=paired >= 2.0,
                  note=rounds)]
    for key, label, unit in (('wall', 'wall-clock from consumer start', 's'),
                             ('cpu_us_per_task', 'consumer CPU per task (all processes)',
                              'µs'),
                             ('redis_cpu_us_per_task', 'Redis server CPU per task', 'µs'),
                             ('commands_per_task', 'Redis commands per task', 'calls')):
        o, h = median_of(ours, key), median_of(huey, key)
        out.append(Figure('1 drain', label, unit, o, h, ratio(o, h)))
    rss_o = median_of(ours, 'worker_rss_kib') / 1024
    rss_h = median_of(huey, 'worker_rss_kib') / 1024
    out.append(Figure('7 memory', 'consumer RSS per child process', 'MiB', rss_o, rss_h,
                      ratio(rss_o, rss_h)))
    tot_o = median_of(ours, 'total_rss_kib') / 1024
    tot_h = median_of(huey, 'total_rss_kib') / 1024
    out.append(Figure('7 memory', 'consumer RSS, whole process tree', 'MiB', tot_o, tot_h,
                      ratio(tot_o, tot_h), note='processes in the tree: ours %d, Huey %d'
                      % (max(r['processes'] for r in ours), max(r['processes'] for r in huey))))
    return out


def main(argv: list[str] | None = None, run_fn: Callable[..., Any] = run) -> None:
    """Run this benchmark alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('-n', type=int, default=5000)
    parser.add_argument('--prefetch', type=int, default=None,
                        help="our consumer's --prefetch (default: its default)")
    parser.add_argument('--sqlite', action='store_true',
                        help='drain from SQLite (ours) and SqliteHuey instead of Redis '
                        '(-n defaults to 10000 there)')
    args = parser.parse_args(argv)
    if args.sqlite:
        for fig in run_sqlite(args.rounds, 10000 if args.n == 5000 else args.n)[0]:
            print(fig.line())
        return
    figs, results = (run_fn(args.rounds, args.n) if args.prefetch is None
                     else run_fn(args.rounds, args.n, prefetch=args.prefetch))
    for fig in figs:
        print(fig.line())
    for side, rounds in results.items():
        for record in rounds:
            log('%s commands: %s', side, sorted(record['commands'].items()))


if __name__ == '__main__':
    main()
