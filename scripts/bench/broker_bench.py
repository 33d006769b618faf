"""Benchmark 6 (and the broker half of 7): events from several publishing processes
through one ``signal-broker`` to one subscriber process.

- unpaced: every publisher sends as fast as it can; events/s delivered to the subscriber
  (first to last event it handled);
- paced at 50,000/s in total: how many events never reached the subscriber;
- paced at 10,000/s: publish-to-subscriber latency (the event's ``ts`` against the
  subscriber's clock, same host).

The broker keeps its default 100,000-event ring; its resident memory is read when empty
and again at the end, when the ring is full.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any, Callable

from bus_tools import BrokerProcess, SubscriberProcess
from common import Child, Figure, alternate, bench_env, median, median_of

PUBLISHERS = 3
START_DELAY = 1.5  # seconds for the publisher processes to start before they begin


def settle(broker: BrokerProcess, quiet: float = 0.6, timeout: float = 60.0) -> None:
    """Wait until the broker's received count has not moved for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = broker.stats()['received'], time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = broker.stats()['received']
        if now != last:
            last, since = now, time.monotonic()


def publish_run(broker: BrokerProcess, total: int, rate: float,
                timing: bool = False) -> dict[str, Any]:
    """``total`` events from ``PUBLISHERS`` processes at ``rate``/s in all (0: unpaced)."""
    sub = SubscriberProcess(broker, timing=timing)
    before = broker.stats()
    try:
        each = total // PUBLISHERS
        start_at = time.time() + START_DELAY
        procs = [subprocess.Popen(
            [sys.executable, 'apps/bus_publisher.py', '--ingest', broker.ingest,
             '--count', str(each), '--rate', str(rate / PUBLISHERS),
             '--start-at', repr(start_at)],
            cwd=Child.cwd(), env=bench_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(PUBLISHERS)]
        reports = [json.loads(proc.stdout.readline() or b'{}') for proc in procs]
        # Publishers stay open until what they queued has reached the broker: a publisher
        # that closes drops whatever is still queued after its bounded linger.
        settle(broker)
        for proc in procs:
            proc.communicate(b'close\n', timeout=30)
        published = sum(r.get('pseq', 0) for r in reports)
        stats = sub.wait_handled(published, timeout=60)
        after = broker.stats()
    finally:
        sub.close()
    handled = stats['handled']
    span = stats['last'] - stats['first']
    return {
        'rate': (handled - 1) / span if span > 0 else 0.0,
        'published': published,
        'publisher_dropped': sum(r.get('dropped', 0) for r in reports),
        'lost': published - handled,
        'broker_received': after['received'] - before['received'],
        'broker_published': after['published'] - before['published'],
        'replayed': stats['subscriber'].get('replayed', 0),
        # Losses the subscriber's on_loss handler was told of (publisher holes included).
        'loss_reported': stats['lost'],
        'p50_ms': stats['latency_p50_ms'] or 0.0,
        'p99_ms': stats['latency_p99_ms'] or 0.0,
    }


def run(rounds: int = 3, unpaced: int = 150_000, paced_fast: int = 100_000,
        paced_slow: int = 20_000) -> tuple[list[Figure], dict[str, Any]]:
    """The three runs, ``rounds`` times each against one broker; figures and raw rounds."""
    with BrokerProcess() as broker:
        empty_rss = broker.rss_kib()
        results: dict[str, Any] = alternate(rounds, {
            'unpaced': lambda: publish_run(broker, unpaced, 0),
            'paced 50k/s': lambda: publish_run(broker, paced_fast, 50_000),
            'paced 10k/s': lambda: publish_run(broker, paced_slow, 10_000, timing=True),
        })
        ring = broker.stats()
        results['broker'] = {'empty_rss_kib': empty_rss, 'full_rss_kib': broker.rss_kib(),
                             'ring_size': ring.get('ring_size'),
                             'ring_capacity': ring.get('ring_capacity')}
    return figures(results), results


def figures(results: dict[str, Any]) -> list[Figure]:
    """The table lines of benchmark 6 and the broker's memory (every one with a ratio:
    to its reference, or to its target where it has none)."""
    unpaced, fast, slow = (results[k] for k in ('unpaced', 'paced 50k/s', 'paced 10k/s'))
    rate = median_of(unpaced, 'rate')
    worst = max(fast, key=lambda r: r['lost'])
    p50, p99 = median_of(slow, 'p50_ms'), median_of(slow, 'p99_ms')
    broker = results['broker']
    empty, full = broker['empty_rss_kib'] / 1024, broker['full_rss_kib'] / 1024
    return [
        Figure('6 broker', '%d publishers -> 1 subscriber, unpaced' % PUBLISHERS,
               'events/s', rate, ratio=rate / 100_000, ratio_of='of target',
               target='>= 100,000/s', met=rate >= 100_000,
               note='events dropped at the publishers\' buffers (median): %d of %d'
               % (median(r['publisher_dropped'] for r in unpaced),
                  median(r['published'] for r in unpaced))),
        Figure('6 broker', 'events lost, paced at 50,000/s (worst round)', 'events',
               worst['lost'], ratio=worst['lost'] / max(worst['published'], 1),
               ratio_of='of published', target='0 lost', met=worst['lost'] == 0,
               note='subscriber received %.0f events/s (median); worst round: %d published, '
               '%d dropped at the publishers\' buffers, %d reached the broker, %d handled by '
               'the subscriber (%d of them replayed from the ring), %d reported to it as lost'
               % (median_of(fast, 'rate'), worst['published'], worst['publisher_dropped'],
                  worst['broker_received'], worst['published'] - worst['lost'],
                  worst['replayed'], worst['loss_reported'])),
        Figure('6 broker', 'publish -> subscriber latency p99 at 10,000/s', 'ms', p99,
               ratio=p99 / 2.0, ratio_of='of target', target='p99 < 2 ms', met=p99 < 2.0,
               note='p50 %.2f ms; subscriber received %.0f events/s (median)'
               % (p50, median_of(slow, 'rate'))),
        Figure('7 memory', 'broker RSS, ring full (%s of %s events)'
               % (broker['ring_size'], broker['ring_capacity']), 'MiB', full, empty,
               full / empty if empty else None, ratio_of='full / empty', ref_label='empty'),
    ]


def main(argv: list[str] | None = None, run_fn: Callable[..., Any] = run) -> None:
    """Run this benchmark alone and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args(argv)
    figs, results = run_fn(args.rounds)
    for fig in figs:
        print(fig.line())
    print(json.dumps({k: v for k, v in results.items()}, default=str), file=sys.stderr)


if __name__ == '__main__':
    main()
