"""Benchmark 6 (and the broker half of 7): events from several publishing processes
through one ``signal-broker`` to one counting subscriber process, side by side with the
reference relay (apps/relay.py: the least a Python loop can do per event).

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

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.bus_tools import BrokerProcess, RelayProcess, SubscriberProcess  # noqa: E402
from scripts.bench.common import (BENCH_DIR, Figure, alternate, bench_env,  # noqa: E402
                                  median, median_of)

PUBLISHERS = 3
START_DELAY = 1.5  # seconds for the publisher processes to start before they begin


def publish_run(target: Any, total: int, rate: float, timing: bool = False) -> dict[str, Any]:
    """``total`` events from ``PUBLISHERS`` processes at ``rate``/s in all (0: unpaced),
    through ``target`` (the broker or the relay) to one counting subscriber process.

    Publishers coalesce as a consumer's workers do; they send batches only to a target
    that announces them on its control socket (the broker; the relay has none). Unpaced,
    a plain counting subscriber reads (the hop measured is the broker's); paced, the
    broker's events go to the library's ``Subscriber``, which repairs from the ring what
    its small send queue dropped (SPEC: ``--subscriber-hwm``), so "lost" means lost to a
    real subscriber. The relay, which numbers nothing, is always read plainly."""
    sub = SubscriberProcess(target, timing=timing,
                            raw=not rate or target.control is None)
    try:
        each = total // PUBLISHERS
        start_at = time.time() + START_DELAY
        extra = ['--control', target.control, '--coalesce'] if target.control else []
        procs = [subprocess.Popen(
            [sys.executable, 'apps/bus_publisher.py', '--ingest', target.ingest,
             '--count', str(each), '--rate', str(rate / PUBLISHERS),
             '--start-at', repr(start_at)] + extra,
            cwd=BENCH_DIR, env=bench_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(PUBLISHERS)]
        reports = [json.loads(proc.stdout.readline() or b'{}') for proc in procs]
        # Publishers stay open until what they queued has gone through: a publisher that
        # closes drops whatever is still queued after its bounded linger.
        sub.settle()
        for proc in procs:
            proc.communicate(b'close\n', timeout=30)
        offered = sum(r.get('pseq', 0) for r in reports)
        stats = sub.wait_handled(offered, timeout=60)
    finally:
        sub.close()
    handled = stats['handled']
    span = stats['last'] - stats['first']
    return {
        'rate': (handled - 1) / span if span > 0 else 0.0,
        'offered': offered,
        'delivered': handled,
        'publisher_dropped': sum(r.get('dropped', 0) for r in reports),
        'batched': all(r.get('batching') for r in reports),
        'lost': offered - handled,
        'p50_ms': stats['latency_p50_ms'] or 0.0,
        'p99_ms': stats['latency_p99_ms'] or 0.0,
    }


def run(rounds: int = 3, unpaced: int = 150_000, paced_fast: int = 100_000,
        paced_slow: int = 20_000) -> tuple[list[Figure], dict[str, Any]]:
    """The broker and the relay side by side, ``rounds`` alternating rounds of each run;
    figures and raw rounds."""
    with BrokerProcess() as broker, RelayProcess() as relay:
        empty_rss = broker.rss_kib()
        results: dict[str, Any] = alternate(rounds, {
            'unpaced': lambda: publish_run(broker, unpaced, 0),
            'relay unpaced': lambda: publish_run(relay, unpaced, 0),
            'paced 50k/s': lambda: publish_run(broker, paced_fast, 50_000, timing=True),
            'relay paced 50k/s': lambda: publish_run(relay, paced_fast, 50_000, timing=True),
            'paced 10k/s': lambda: publish_run(broker, paced_slow, 10_000, timing=True),
            'relay paced 10k/s': lambda: publish_run(relay, paced_slow, 10_000, timing=True),
        })
        ring = broker.stats()
        results['broker'] = {'empty_rss_kib': empty_rss, 'full_rss_kib': broker.rss_kib(),
                             'ring_size': ring.get('ring_size'),
                             'ring_capacity': ring.get('ring_capacity')}
    return figures(results), results


def _run_note(records: list[dict[str, Any]]) -> str:
    worst = max(records, key=lambda r: r['lost'])
    return ('median %.0f events/s; worst round: %d offered, %d dropped at the publishers, '
            '%d delivered%s' % (median_of(records, 'rate'), worst['offered'],
                                worst['publisher_dropped'], worst['delivered'],
                                '' if worst['batched'] else ' (publishers sent one by one)'))


def figures(results: dict[str, Any]) -> list[Figure]:
    """The table lines of benchmark 6 and the broker's memory (each with its ratio to the
    relay measured in the same run, or to its target where it has none)."""
    unpaced, relay = results['unpaced'], results['relay unpaced']
    fast, slow = results['paced 50k/s'], results['paced 10k/s']
    rate, relay_rate = median_of(unpaced, 'rate'), median_of(relay, 'rate')
    worst = max(fast, key=lambda r: r['lost'])
    p99_fast, p99_slow = median_of(fast, 'p99_ms'), median_of(slow, 'p99_ms')
    broker = results['broker']
    empty, full = broker['empty_rss_kib'] / 1024, broker['full_rss_kib'] / 1024
    return [
        Figure('6 broker', '%d publishers -> 1 subscriber, unpaced, delivered' % PUBLISHERS,
               'events/s', rate, relay_rate, rate / relay_rate if relay_rate else None,
               ratio_of='of the relay', ref_label='relay',
               target='>= 100,000/s and >= 0.8x relay',
               met=rate >= 100_000 and relay_rate > 0 and rate >= 0.8 * relay_rate,
               note='broker: %s; relay: %s' % (_run_note(unpaced), _run_note(relay))),
        Figure('6 broker', 'events lost, paced at 50,000/s (worst round)', 'events',
               worst['lost'], ratio=worst['lost'] / max(worst['offered'], 1),
               ratio_of='of offered', target='0 lost', met=worst['lost'] == 0,
               note=_run_note(fast)),
        Figure('6 broker', 'publish -> subscriber latency p99 at 50,000/s', 'ms', p99_fast,
               median_of(results['relay paced 50k/s'], 'p99_ms'), ratio=p99_fast / 5.0,
               ratio_of='of target', ref_label='relay', target='p99 <= 5 ms',
               met=p99_fast <= 5.0, note='p50 %.2f ms' % median_of(fast, 'p50_ms')),
        Figure('6 broker', 'publish -> subscriber latency p99 at 10,000/s', 'ms', p99_slow,
               median_of(results['relay paced 10k/s'], 'p99_ms'), ratio=p99_slow / 2.0,
               ratio_of='of target', ref_label='relay', target='p99 <= 2 ms',
               met=p99_slow <= 2.0, note='p50 %.2f ms' % median_of(slow, 'p50_ms')),
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
