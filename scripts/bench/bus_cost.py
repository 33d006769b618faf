"""Benchmarks 2 and 3: what watching costs. The drain of benchmark 1 (ours) with the bus
off, with the bus on and one subscriber attached (2: compared with the bus off), and with
the bus on and either no subscriber or one that sleeps 50 ms per event (3: slow compared
with none). Each subscriber is a separate process and reports what it received and what
it lost.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

if __package__ in (None, ''):   # run as a file: the repository root onto sys.path
    import _repo_root  # noqa: F401

from scripts.bench.bus_tools import BrokerProcess, SubscriberProcess  # noqa: E402
from scripts.bench.common import (OURS, Figure, alternate, median, median_of,  # noqa: E402
                                  paired_ratio)
from scripts.bench.drain import drain_once  # noqa: E402
from scripts.support.redis_server import RedisServer  # noqa: E402

SLOW_MS = 50.0
OFF, ON, NONE, SLOW = ('bus off', 'bus on, 1 subscriber', 'bus on, no subscriber',
                       'bus on, slow subscriber')


def bus_drain(redis: RedisServer, broker: BrokerProcess, n: int,
              mode: str) -> dict[str, Any]:
    """One drain of ``n`` tasks in ``mode`` (see the module constants)."""
    if mode == OFF:
        return drain_once(OURS, redis, n)
    if mode == NONE:
        return drain_once(OURS, redis, n, bus=broker.ingest)
    sub = SubscriberProcess(broker, sleep_ms=SLOW_MS if mode == SLOW else 0.0)
    try:
        before = broker.stats()['published']
        record = drain_once(OURS, redis, n, bus=broker.ingest)
        published = broker.stats()['published'] - before
        seen = sub.wait_handled(published, 30) if mode == ON else sub.stats()
    finally:
        sub.close()
    record.update(published=published, handled=seen['handled'], lost=seen['lost'],
                  loss_notices=seen['loss_notices'],
                  behind=published - seen['handled'] - seen['lost'])
    return record


def run(rounds: int = 3, n: int = 5000) -> tuple[list[Figure], dict[str, list[dict]]]:
    """The three modes, alternating, ``rounds`` times each; figures and raw rounds."""
    with RedisServer().start() as redis, BrokerProcess() as broker:
        results = alternate(rounds, {mode: (lambda m=mode: bus_drain(redis, broker, n, m))
                                     for mode in (OFF, ON, NONE, SLOW)})
    return figures(results, n), results


def figures(results: dict[str, list[dict[str, Any]]], n: int) -> list[Figure]:
    """The table lines of benchmarks 2 and 3."""
    off, on, none, slow = (median_of(results[m], 'rate') for m in (OFF, ON, NONE, SLOW))
    on_rounds, slow_rounds = results[ON], results[SLOW]
    rates = {m: [r['rate'] for r in results[m]] for m in (OFF, ON, NONE, SLOW)}
    on_ratio, on_note = paired_ratio(rates[ON], rates[OFF])
    slow_ratio, slow_note = paired_ratio(rates[SLOW], rates[NONE])
    cpu = {m: [r['cpu_us_per_task'] for r in results[m]] for m in (OFF, ON)}
    cpu_ratio, cpu_note = paired_ratio(cpu[ON], cpu[OFF])
    return [
        Figure('2 bus cost', 'drain %d, bus on + 1 subscriber' % n, 'tasks/s', on, off,
               on_ratio, ratio_of='on / off', ref_label='bus off',
               target='>= 0.90 (moonshot 0.95)', met=on_ratio >= 0.90,
               note=on_note + '; subscriber received %d of %d events (median), lost %d'
               % (median(r['handled'] for r in on_rounds),
                  median(r['published'] for r in on_rounds),
                  max(r['lost'] for r in on_rounds))),
        Figure('2 bus cost', 'consumer CPU per task, bus on + 1 subscriber', 'µs',
               median(cpu[ON]), median(cpu[OFF]), cpu_ratio, ratio_of='on / off',
               ref_label='bus off', target='<= 1.10 (moonshot 1.05)', met=cpu_ratio <= 1.10,
               note=cpu_note + '; supervisor and worker processes, user + system (libzmq '
               'I/O threads included)'),
        Figure('3 slow sub', 'drain %d, subscriber sleeping %d ms/event' % (n, SLOW_MS),
               'tasks/s', slow, none, slow_ratio, ratio_of='slow / none',
               ref_label='bus on, no subscriber', target='>= 0.95 (within 5%)',
               met=slow_ratio >= 0.95,
               note=slow_note + '; when the drain ended the subscriber had handled %d of %d events, '
               'reported %d lost in %d loss notices, %d still queued for it (median)'
               % (median(r['handled'] for r in slow_rounds),
                  median(r['published'] for r in slow_rounds),
                  median(r['lost'] for r in slow_rounds),
                  median(r['loss_notices'] for r in slow_rounds),
                  median(r['behind'] for r in slow_rounds))),
    ]


def main(argv: list[str] | None = None, run_fn: Callable[..., Any] = run) -> None:
    """Run these benchmarks alone and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('-n', type=int, default=5000)
    args = parser.parse_args(argv)
    for fig in run_fn(args.rounds, args.n)[0]:
        print(fig.line())
        if fig.note:
            print('           ' + fig.note)


if __name__ == '__main__':
    main()
