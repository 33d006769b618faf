"""Redis round trips per task, counted with ``MONITOR`` during an untimed drain.

A round trip is one request a client sends and waits for: a plain command, one
``EVALSHA`` (the commands a script runs inside Redis are not round trips), or one
``MULTI``...``EXEC`` transaction. The benchmark's own result-count polls are subtracted.
"""
from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any, Callable

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.common import (HUEY, OURS, Child, Figure, bench_env,  # noqa: E402
                                  consumer_command, ratio)
from scripts.bench.drain import prefill, wait_drained  # noqa: E402
from scripts.support.polling import wait_until  # noqa: E402
from scripts.support.redis_server import RedisServer  # noqa: E402

_LINE = re.compile(r'^[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"')


def count_round_trips(lines: list[str]) -> collections.Counter:
    """Round trips by top-level command name in ``redis-cli monitor`` output."""
    trips: collections.Counter = collections.Counter()
    in_transaction: set[str] = set()
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            continue
        client, command = match.group(1), match.group(2).lower()
        if client == 'lua':
            continue
        if command == 'multi':
            in_transaction.add(client)
            trips['multi/exec'] += 1
        elif command == 'exec':
            in_transaction.discard(client)
        elif client not in in_transaction:
            trips[command] += 1
    return trips


def trace_drain(side: str, redis: RedisServer, n: int, workers: int = 2) -> dict[str, Any]:
    """Drain ``n`` tasks under ``MONITOR``; round trips per task, by command."""
    queue = prefill(side, redis, n)
    out = tempfile.NamedTemporaryFile(prefix='bench-monitor-', suffix='.log')
    monitor = subprocess.Popen([shutil.which('redis-cli') or 'redis-cli', '-p',
                                str(redis.port), 'monitor'], stdout=out)
    wait_until(lambda: out.tell() or open(out.name).read(2), 5, 0.02, 'redis-cli monitor',
               TimeoutError)
    consumer = Child(consumer_command(side, workers), env=bench_env(redis.url))
    try:
        polls = wait_drained(queue, n, consumer, interval=0.05)[3]
        time.sleep(0.2)  # let the last release reach the log
    finally:
        consumer.stop()
        monitor.terminate()
        monitor.wait(5)
    with open(out.name, errors='replace') as handle:
        trips = count_round_trips(handle.readlines())
    out.close()
    trips['evalsha'] -= polls if side == OURS else 0
    trips['hlen'] -= polls if side == HUEY else 0
    per_task = {name: count / n for name, count in trips.items() if count > 0}
    return {'per_task': sum(per_task.values()), 'by_command': per_task}


def run(n: int = 500) -> tuple[list[Figure], dict[str, Any]]:
    """Both sides once (round trips are counted, not timed)."""
    with RedisServer().start() as redis:
        results = {side: trace_drain(side, redis, n) for side in (OURS, HUEY)}
    ours, huey = results[OURS]['per_task'], results[HUEY]['per_task']
    note = '; '.join('%s: %s' % (side, ', '.join(
        '%s %.2f' % item for item in sorted(results[side]['by_command'].items(),
                                            key=lambda kv: -kv[1]) if item[1] >= 0.01))
        for side in (OURS, HUEY))
    return [Figure('1 drain', 'Redis round trips per task (MONITOR, %d tasks)' % n, 'trips',
                   ours, huey, ratio(ours, huey), note=note)], results


def main(argv: list[str] | None = None, run_fn: Callable[..., Any] = run) -> None:
    """Count round trips for both sides and print them by command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=500)
    args = parser.parse_args(argv)
    figs, _ = run_fn(args.n)
    for fig in figs:
        print(fig.line())
        print('           ' + fig.note)


if __name__ == '__main__':
    main()
