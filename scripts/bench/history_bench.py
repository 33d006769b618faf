"""The live view's figures (SPEC §8): how fast the history stores, how fast the overview
and a timeline answer with 1,000,000 stored events, and whether memory grows with them.

(a) ``store``: ``History.store`` in batches of 5,000 (what the history subscriber writes
    per transaction), events of 3 per task (enqueued, executing, complete) with bodies as
    a worker's publisher builds them, in the form the subscriber hands over (the body
    frame as received, decoded once); events/s.
(b) ``bus``: a real ``signal-broker`` process, a publisher process sending N events as
    fast as ``signal_bus.Publisher`` takes them, coalescing as a consumer's worker does
    (what its buffer drops never reaches the broker), and the history subscriber
    (``HistoryRecorder``) in this process: ``live``, events/s stored while the publisher
    sends; ``catch-up``, events/s stored when the
    subscriber starts after the broker's ring holds all N (a restarted dashboard). Losses
    the history counted (other than events a publisher dropped before the broker, which it
    also records) must be 0.
(c) ``queries``: with the history filled to ``--events`` (default 1,000,000), the median and
    worst of 20 calls of ``overview()`` and of ``timeline(id)``.
(d) ``memory``: this process's resident memory after 200,000 and after ``--events`` stored.
(e) ``redis``: (a) against the Redis history (a private ``redis-server``), for
    ``--redis-events`` events (default 200,000), and (c) at that size.

    python scripts/bench/history_bench.py [--events 1000000] [--bus-events 300000]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.common import log  # noqa: E402
from scripts.support.polling import wait_until  # noqa: E402
from scripts.support.ports import free_port  # noqa: E402
from scripts.support.procs import rss_kib  # noqa: E402
from scripts.support.redis_server import RedisServer  # noqa: E402

from signal_bus.dashboard.recorder import HistoryRecorder, RecorderConfig  # noqa: E402
from signal_bus.body import build_body, encode_body  # noqa: E402
from signal_bus.history import History  # noqa: E402
from signal_bus.history_batch import received_event  # noqa: E402

BATCH = 5000
SIGNALS = ('enqueued', 'executing', 'complete')


def _task(number: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(id=str(uuid.UUID(int=number)),
                                 registry_name='myapp.tasks.resize_image',
                                 args=('s3://bucket/img/%d.png' % number, 640, 480),
                                 kwargs={'quality': 85}, retries=0, tseq=1, final=False)


def synthetic(first: int, count: int, now: float) -> list[dict]:
    """``count`` events as the history subscriber hands them over, from number
    ``first`` on, 3 per task."""
    events = []
    for number in range(first, first + count):
        task = _task(number // 3)
        signal = SIGNALS[number % 3]
        body = build_body(signal, task, None, 'worker', host='worker-01', pid=4242)
        body.update(ts=now + number * 1e-5, final=signal == 'complete', queue='main')
        events.append(received_event(encode_body(body), number + 1, number + 1, 1))
    return events


def fill(history: History, total: int, marks: dict[int, int]) -> float:
    """Store ``total`` events; returns events/s; records RSS (KiB) at the ``marks``."""
    now, spent, stored = time.time() - 3600, 0.0, 0
    while stored < total:
        batch = synthetic(stored, min(BATCH, total - stored), now)
        started = time.perf_counter()
        history.store(batch)
        spent += time.perf_counter() - started
        stored += len(batch)
        for mark in marks:
            if stored >= mark and not marks[mark]:
                marks[mark] = rss_kib(os.getpid())
        if stored % 100_000 == 0:
            log('stored %d events', stored)
    return stored / spent


def time_queries(history: History, task_id: str) -> dict[str, tuple[float, float]]:
    """Median and worst milliseconds of 20 overviews and 20 timelines."""
    figures = {}
    for name, call in (('overview', history.overview),
                       ('timeline', lambda: history.timeline(task_id))):
        times = []
        for _ in range(20):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
        figures[name] = (statistics.median(times), max(times))
    return figures


def _publish(ingest: str, control: str, count: int) -> None:
    """Publish as a consumer's worker does: coalescing, once the broker says it may."""
    from signal_bus import BusConfig, Publisher
    publisher = Publisher(BusConfig(ingest=ingest, control=control))
    publisher.coalesce()
    publisher.wait_for_batches()
    for number in range(count):
        publisher.publish(SIGNALS[number % 3], _task(number // 3))
    publisher.close()


def bus_rates(folder: str, count: int) -> dict[str, tuple[float, int, int]]:
    """Through a real broker: ``live`` (the recorder running while a publisher sends) and
    ``catch-up`` (the recorder started after the ring holds everything, as after a
    restart); each (events/s stored, events the broker published, events lost)."""
    ports = [free_port() for _ in range(3)]
    ingest, publish, control = ('tcp://127.0.0.1:%d' % port for port in ports)
    broker = subprocess.Popen([sys.executable, '-m', 'signal_bus.broker_cli', '--ingest',
                               ingest, '--publish', publish, '--control', control,
                               '--ring', str(2 * count + 10)], stderr=subprocess.DEVNULL)
    figures, sent = {}, 0
    try:
        for mode in ('live', 'catch-up'):
            history = History('sqlite:///' + os.path.join(folder, mode + '.db'))
            recorder = HistoryRecorder(history, RecorderConfig(connect=publish,
                                                               control=control))
            if mode == 'live':
                recorder.start()
                wait_until(recorder.resumed.is_set, 30, 0.005, 'the recorder to reach the broker',
                           TimeoutError)
            sender = multiprocessing.Process(target=_publish, args=(ingest, control, count))
            sender.start()
            if mode == 'live':
                wait_until(lambda: history.position()[1] > sent, 60, 0.005, 'the first event stored',
                           TimeoutError)
            started = time.perf_counter()
            sender.join()
            time.sleep(0.5)  # let the broker take the last events before asking its count
            total = _broker_last_seq(control)
            if mode == 'catch-up':
                started = time.perf_counter()
                recorder.start()
            wait_until(lambda: history.position()[1] >= total, 600, 0.01, 'every event stored',
                       TimeoutError)
            elapsed = time.perf_counter() - started
            stored = sum(row['count'] for row in history.totals())
            lost = sum(i['count'] or 0 for i in history.incidents(100_000)
                       if i['kind'] != 'publisher-loss')
            figures[mode] = (stored / elapsed, total - sent, lost)
            recorder.stop()
            sent = total
        return figures
    finally:
        broker.terminate()
        broker.wait(10)


def _broker_last_seq(control: str) -> int:
    import zmq

    from signal_bus.subscriber import ControlClient
    context = zmq.Context()
    client = ControlClient(context, control, None, 5.0)
    try:
        return int(client.stats()['last_seq'])
    finally:
        client.close()
        context.term()


def main(argv: list[str] | None = None) -> int:
    """Run the four measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--events', type=int, default=1_000_000)
    parser.add_argument('--bus-events', type=int, default=300_000)
    parser.add_argument('--redis-events', type=int, default=200_000)
    args = parser.parse_args(argv)
    log('redis: filling a Redis history with %d events', args.redis_events)
    server = RedisServer().start()
    try:
        redis_history = History(server.url)
        redis_rate = fill(redis_history, args.redis_events, {})
        redis_queries = time_queries(redis_history, str(uuid.UUID(int=args.redis_events // 6)))
    finally:
        server.close()
    with tempfile.TemporaryDirectory(prefix='history-bench-') as folder:
        log('bus: %d events through a broker into the history', args.bus_events)
        bus = bus_rates(folder, args.bus_events)
        history = History('sqlite:///' + os.path.join(folder, 'history.db'))
        marks = {200_000: 0, args.events: 0}
        log('store: filling the history with %d events', args.events)
        rate = fill(history, args.events, marks)
        queries = time_queries(history, str(uuid.UUID(int=args.events // 6)))
        size = os.path.getsize(history.path) / 2 ** 20
    print('history store (batches of %d): %.0f events/s' % (BATCH, rate))
    for mode, (bus_rate, published, lost) in bus.items():
        print('through the bus, %s: %.0f events/s stored, %d published by the broker, '
              '%d lost by the history' % (mode, bus_rate, published, lost))
    for name, (median, worst) in queries.items():
        print('%s with %d stored events: median %.1f ms, worst %.1f ms'
              % (name, args.events, median, worst))
    print('Redis history store: %.0f events/s; with %d events overview median %.1f ms, '
          'timeline median %.1f ms' % (redis_rate, args.redis_events,
                                       redis_queries['overview'][0],
                                       redis_queries['timeline'][0]))
    print('resident memory: %d MiB at 200,000 events, %d MiB at %d (file %.0f MiB)'
          % (marks[200_000] // 1024, marks[args.events] // 1024, args.events, size))
    return 0


if __name__ == '__main__':
    sys.exit(main())
