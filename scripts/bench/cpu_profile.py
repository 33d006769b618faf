"""Where the time per task goes: the profiler half of the benchmarks.

    python cpu_profile.py loop [-n 5000] [--profile]    # worker path in-process, both sides
    python cpu_profile.py enqueue [-n 5000] [--profile] # one enqueue call, both sides
    python cpu_profile.py spy [-n 20000]                # py-spy on our real consumer
    python cpu_profile.py map [-n 10000]                # the parts of our .map(), per task

``loop`` runs what a worker does per task (ours: a claim that also releases the previous
task, then execute; Huey: dequeue, execute) in this process against a private Redis and
prints CPU and wall time per task;
with ``--profile`` it adds the top functions by own CPU time (cProfile on process time,
which inflates absolute numbers, so read them as shares). ``spy`` drains tasks with our
consumer while ``py-spy record`` samples every worker, and prints inclusive shares per
function (install py-spy with pip). ``map`` times each part of ``.map()`` of ``n`` tasks
(median of 20 batches, µs per task): making an id, making the task from its model,
encoding the message, the storage call of 1,000 messages (Redis included), and the whole.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import io
import pstats
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any, Callable

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.common import HUEY, OURS, Child, bench_env, consumer_command  # noqa: E402
from scripts.bench.drain import app_for, prefill, wait_drained  # noqa: E402
from scripts.support.redis_server import RedisServer  # noqa: E402


def worker_step(side: str, queue: Any) -> Callable[[], None]:
    """One task's worth of a worker's work on ``side`` (ours hands the finished task's
    token to the next claim, as the consumer's worker does)."""
    if side == OURS:
        queue.storage.reset_after_fork()
        previous: list[str | None] = [None]

        def step() -> None:
            task, token = queue.claim('bench-profile', 30.0, release=previous[0])
            with queue.emitting_as('worker'):
                queue.execute(task)
            previous[0] = token
        return step

    def huey_step() -> None:
        queue.execute(queue.dequeue())
    return huey_step


def measure(step: Callable[[], None], n: int, profile: bool) -> tuple[float, float, str]:
    """CPU and wall microseconds per call of ``step``, and a profile if asked."""
    step()  # connections and script loading outside the measurement
    profiler = cProfile.Profile(time.process_time) if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(n - 1):
        step()
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    text = ''
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats('tottime').print_stats(25)
        text = out.getvalue()
    return cpu * 1e6 / (n - 1), wall * 1e6 / (n - 1), text


def in_process(kind: str, n: int, profile: bool) -> None:
    """``loop`` or ``enqueue`` for both sides, printed."""
    with RedisServer().start() as redis:
        for side in (OURS, HUEY):
            if kind == 'loop':
                step = worker_step(side, prefill(side, redis, n))
            else:
                redis.flushall()
                _, noop = app_for(side, redis.url)
                counter = iter(range(10 ** 9))

                def step(noop: Any = noop) -> None:
                    noop(next(counter))
            cpu, wall, text = measure(step, n, profile)
            print('%s %s: %.1f µs CPU, %.1f µs wall per task' % (side, kind, cpu, wall))
            if text:
                print(text)


def map_parts(n: int) -> dict[str, float]:
    """Median µs per task of each part of our ``.map()`` of ``n`` tasks."""
    from queue_core.task import Task, new_task_id
    with RedisServer().start() as redis:
        queue, noop = app_for(OURS, redis.url)
        model = Task(noop)
        tasks = [model.sibling((i,)) for i in range(n)]
        encoded = [(queue.serialize_task(task), 0) for task in tasks]
        parts: dict[str, Callable[[], Any]] = {
            'new_task_id': lambda: [new_task_id() for _ in range(n)],
            'Task.sibling': lambda: [model.sibling((i,)) for i in range(n)],
            'serialize_task': lambda: [queue.serialize_task(task) for task in tasks],
            'storage.enqueue_many': lambda: [queue.storage.enqueue_many(encoded[i:i + 1000])
                                             for i in range(0, n, 1000)],
            'whole .map()': lambda: noop.map(range(n)),
        }
        figures = {}
        for name, part in parts.items():
            times = []
            for _ in range(20):
                redis.flushall()
                gc.collect()  # as benchmark 4 does: not the previous batch's garbage
                started = time.perf_counter()
                part()
                times.append(time.perf_counter() - started)
            figures[name] = sorted(times)[len(times) // 2] / n * 1e6
        return figures


def aggregate(raw: str, frame_filter: str, top: int = 30) -> list[tuple[float, str]]:
    """Inclusive share per function from ``py-spy --format raw`` output."""
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(' ')
        if not count.isdigit() or frame_filter not in stack:
            continue
        total += int(count)
        names = {re.sub(r':\d+\)', ')', f) for f in stack.split(';')
                 if not f.startswith(('process ', 'thread '))}
        for name in names:
            counts[name] += int(count)
    return [(100.0 * c / total, name) for name, c in counts.most_common(top)] if total else []


def spy(n: int) -> None:
    """Drain ``n`` tasks with our consumer under py-spy; print where workers spend time."""
    if shutil.which('py-spy') is None:
        raise SystemExit('py-spy is not installed: python -m pip install py-spy')
    with RedisServer().start() as redis, tempfile.NamedTemporaryFile(suffix='.txt') as out:
        queue = prefill(OURS, redis, n)
        consumer = Child(consumer_command(OURS, 2), env=bench_env(redis.url))
        try:
            time.sleep(1.0)  # workers forked
            recorder = subprocess.Popen(
                ['py-spy', 'record', '--pid', str(consumer.pid), '--subprocesses', '--rate',
                 '500', '--format', 'raw', '--nonblocking', '-o', out.name],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_drained(queue, n, consumer)
            recorder.send_signal(2)
            recorder.wait(60)
        finally:
            consumer.stop()
        with open(out.name, errors='replace') as handle:
            raw = handle.read()
    for share, name in aggregate(raw, 'Worker.loop', 60):
        if share < 99.9:  # frames every sample shares (process start-up) say nothing
            print('%5.1f%%  %s' % (share, name))


def main() -> None:
    """Parse the command line and run one of the modes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('mode', choices=('loop', 'enqueue', 'spy', 'map'))
    parser.add_argument('-n', type=int, default=None)
    parser.add_argument('--profile', action='store_true', help='add a cProfile listing')
    args = parser.parse_args()
    if args.mode == 'spy':
        spy(args.n or 20000)
    elif args.mode == 'map':
        for name, value in map_parts(args.n or 10000).items():
            print('map, %-22s %5.2f µs a task' % (name, value))
    else:
        in_process(args.mode, args.n or 5000, args.profile)


if __name__ == '__main__':
    main()
