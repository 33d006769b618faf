"""Where the bus's cost per event goes: the measurements behind the findings' profile.

    python scripts/bench/bus_profile.py [-n 20000]

Prints, each measured here and now against real processes:
- ``publish``: wall µs of one ``Publisher.publish`` (a broker process receiving), one by
  one and coalescing as a consumer's worker thread and worker process do;
- ``wake-up``: the publishing process's CPU per task (user + system, libzmq's I/O thread
  included) for two events around 100 µs of busy work, against the same work without
  events, in each mode: what a wake-up of libzmq's I/O thread costs, and how often;
- ``broker``: a broker process's CPU per event for 3 publishers -> 1 counting subscriber,
  unpaced, split into its Python thread and libzmq's I/O thread;
- ``round trip``: a bare redis-py ``PING`` and ``RPUSH``, our storage's enqueue and a whole
  ``noop(i)`` call, µs each (what single-call enqueue is made of), the last two also with
  the reply awaited asleep instead of actively (``RedisStorage.enqueue_spin = 0``);
- ``drain``: the cores each process keeps busy while our consumer drains 10,000 tasks
  (2 process workers) with the bus off and with the bus on and one counting subscriber,
  sampled from ``/proc`` between the first and the last result, with the rate.
"""
from __future__ import annotations

import argparse
import glob
import os
import threading
import time
import timeit
import types
from typing import Any

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench import broker_bench  # noqa: E402
from scripts.bench.bus_tools import BrokerProcess, SubscriberProcess  # noqa: E402
from scripts.bench.common import OURS, Child, bench_env, consumer_command  # noqa: E402
from scripts.bench.drain import app_for, prefill, tree_of, wait_drained  # noqa: E402
from scripts.support.procs import cpu_seconds  # noqa: E402
from scripts.support.redis_server import RedisServer  # noqa: E402

SPIN_SECONDS = 100e-6


def _task(number: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(id='%032x' % number, registry_name='apps.ours.noop',
                                 args=(number,), kwargs={}, retries=0, tseq=1, final=False)


#: How a publisher sends: one event a message; coalescing as a worker thread does (the batch
#: goes with each ``executing``); as a worker process does (the batch goes when 0.5 ms old,
#: the process's alarm covering long tasks).
MODES = {'one by one': None, 'thread worker': False, 'process worker': True}


def _publisher(broker: BrokerProcess, deferred: bool | None) -> Any:
    from signal_bus import BusConfig, Publisher
    publisher = Publisher(BusConfig(ingest=broker.ingest, control=broker.control))
    if deferred is not None:
        publisher.coalesce(deferred)
        publisher.wait_for_batches()
    return publisher


def _spin() -> None:
    end = time.perf_counter() + SPIN_SECONDS
    while time.perf_counter() < end:
        pass


def publish_cost(broker: BrokerProcess, n: int, deferred: bool | None) -> float:
    """Wall µs of one publish."""
    publisher = _publisher(broker, deferred)
    tasks = [_task(i) for i in range(n)]
    started = time.perf_counter()
    for task in tasks:
        publisher.publish('complete', task, None, 'worker')
    publisher.flush()
    elapsed = time.perf_counter() - started
    publisher.close()
    return elapsed / n * 1e6


def task_cpu(broker: BrokerProcess | None, n: int, deferred: bool | None) -> float:
    """This process's CPU µs per task of 100 µs busy work with (or without) two events."""
    publisher = _publisher(broker, deferred) if broker is not None else None
    tasks = [_task(i) for i in range(n)]
    started = time.process_time()
    for task in tasks:
        if publisher is not None:
            publisher.publish('executing', task, None, 'worker')
        _spin()
        if publisher is not None:
            publisher.publish('complete', task, None, 'worker')
    if publisher is not None:
        publisher.flush()
    cpu = time.process_time() - started
    if publisher is not None:
        publisher.close()
    return cpu / n * 1e6


def _thread_cpu(pid: int) -> dict[str, float]:
    ticks = os.sysconf('SC_CLK_TCK')
    seconds: dict[str, float] = {}
    for task in glob.glob('/proc/%d/task/*' % pid):
        with open(task + '/stat') as stat, open(task + '/comm') as comm:
            fields = stat.read().rsplit(')', 1)[1].split()
            name = comm.read().strip()
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def broker_cpu(events: int) -> dict[str, float]:
    """The broker process's CPU µs per event, by thread, for an unpaced run."""
    with BrokerProcess() as broker:
        before = _thread_cpu(broker.pid)
        result = broker_bench.publish_run(broker, events, 0)
        after = _thread_cpu(broker.pid)
    per_event = {name: (after[name] - before.get(name, 0.0)) / result['delivered'] * 1e6
                 for name in after}
    per_event['delivered events/s'] = result['rate']
    return per_event


def round_trips(n: int) -> dict[str, float]:
    """µs of a bare PING and RPUSH, our storage's enqueue and a whole ``noop(i)``, the
    last two also with the reply awaited asleep (``enqueue_spin = 0``)."""
    import redis
    with RedisServer().start() as server:
        client = redis.Redis.from_url(server.url)
        queue, noop = app_for(OURS, server.url)
        data = queue.serialize_task(noop.s(1))
        for _ in range(200):
            noop(1)
        calls = (('redis-py PING', client.ping),
                 ('redis-py RPUSH', lambda: client.rpush('x', data)),
                 ('our storage enqueue', lambda: queue.storage.enqueue(data, 0)),
                 ('whole noop(i) call', lambda: noop(1)))
        figures = {name: timeit.timeit(call, number=n) / n * 1e6 for name, call in calls}
        queue.storage.enqueue_spin = 0.0
        for name, call in calls[2:]:
            figures[name + ', asleep'] = timeit.timeit(call, number=n) / n * 1e6
        return figures


def drain_cores(n: int, bus: bool) -> dict[str, float]:
    """Tasks/s of one drain of ``n`` tasks and the cores each process kept busy meanwhile
    (the consumer's tree, Redis and, with ``bus``, the broker and one counting subscriber)."""
    with RedisServer().start() as redis, BrokerProcess() as broker:
        queue = prefill(OURS, redis, n)
        subscriber = SubscriberProcess(broker) if bus else None
        consumer = Child(consumer_command(OURS, 2, broker.ingest if bus else None),
                         env=bench_env(redis.url))
        groups = {'consumer': lambda: tree_of(consumer.pid), 'redis': lambda: [redis.proc.pid]}
        if subscriber is not None:
            groups.update(broker=lambda: [broker.pid], subscriber=lambda: [subscriber.child.pid])
        samples: list[tuple[float, dict[str, float]]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                samples.append((time.monotonic(), {name: sum(map(cpu_seconds, pids()))
                                                   for name, pids in groups.items()}))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            first_t, first_count, end_t, _ = wait_drained(queue, n, consumer)
        finally:
            done.set()
            sampler.join()
            consumer.stop()
            if subscriber is not None:
                subscriber.close()
    start = min((row for row in samples if row[0] >= first_t), key=lambda row: row[0])
    end = max((row for row in samples if row[0] <= end_t), key=lambda row: row[0])
    span = end[0] - start[0]
    figures = {'tasks/s': (n - first_count) / (end_t - first_t)}
    figures.update({name + ' cores': (end[1][name] - start[1][name]) / span
                    for name in groups})
    return figures


def main(argv: list[str] | None = None) -> None:
    """Measure and print each part."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=20000, help='events or tasks per part')
    args = parser.parse_args(argv)
    with BrokerProcess() as broker:
        for mode, deferred in MODES.items():
            print('publish, %-14s %6.1f µs wall'
                  % (mode, publish_cost(broker, args.n, deferred)))
        bare = task_cpu(None, args.n // 4, None)
        for mode, deferred in MODES.items():
            cpu = task_cpu(broker, args.n // 4, deferred)
            print('wake-up, %-14s %6.1f µs CPU a task with two events, %.1f without (+%.1f)'
                  % (mode, cpu, bare, cpu - bare))
    for name, value in broker_cpu(max(args.n, 30000) * 3).items():
        print('broker, %-20s %10.1f' % (name, value) + ('' if 'events/s' in name
                                                        else ' µs CPU an event'))
    for name, value in round_trips(args.n // 4).items():
        print('round trip, %-27s %6.1f µs' % (name, value))
    for bus in (False, True):
        print('drain, bus %-3s ' % ('on' if bus else 'off') + ', '.join(
            '%s %.2f' % (name, value) if 'cores' in name else '%.0f %s' % (value, name)
            for name, value in drain_cores(args.n // 2, bus).items()))


if __name__ == '__main__':
    main()
