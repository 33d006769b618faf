"""A tiny run of the benchmark harness, so that scripts/bench does not rot.

Counts are tiny and nothing here is timed: the tests check that each benchmark drives
the real consumer, broker and subscriber to completion and reports what it measured.
"""
from __future__ import annotations

import datetime

import pytest

from scripts.bench import broker_bench, bus_cost, report
from scripts.bench.bus_tools import BrokerProcess, RelayProcess
from scripts.bench.common import HUEY, OURS, Figure, median, percentile
from scripts.bench.drain import drain_once
from scripts.bench.enqueue import timed_enqueue
from scripts.bench.latency import latency_once
from scripts.bench.round_trips import count_round_trips
from scripts.support.redis_server import RedisServer


@pytest.fixture(scope='module')
def redis():
    server = RedisServer().start()
    yield server
    server.close()


def test_drain_runs_our_consumer_until_every_result_is_stored(redis):
    record = drain_once(OURS, redis, 20)
    assert record['rate'] >= 0 and record['wall'] > 0
    assert record['commands_per_task'] > 0
    assert record['worker_rss_kib'] > 0


def test_drain_and_enqueue_drive_huey_the_same_way(redis):
    pytest.importorskip('huey')
    record = drain_once(HUEY, redis, 20)
    assert record['commands_per_task'] > 0
    assert timed_enqueue(HUEY, redis, 20, mapped=False) > 0
    assert timed_enqueue(HUEY, redis, 20, mapped=True) > 0


def test_enqueue_single_and_map_leave_every_task_pending(redis):
    # timed_enqueue raises unless exactly n tasks are pending afterwards.
    assert timed_enqueue(OURS, redis, 25, mapped=False) > 0
    assert timed_enqueue(OURS, redis, 25, mapped=True) > 0


def test_latency_round_trips_return_the_result(redis):
    result = latency_once(OURS, redis, 3)
    assert set(result) == {'p50', 'p99', 'mean'}
    assert 0 < result['p50'] <= result['p99']


def test_bus_drain_delivers_every_event_to_the_subscriber(redis):
    with BrokerProcess() as broker:
        record = bus_cost.bus_drain(redis, broker, 10, bus_cost.ON)
    assert record['published'] == 20  # executing + complete per task
    assert record['handled'] == 20 and record['lost'] == 0


def test_broker_run_counts_what_the_subscriber_received():
    with BrokerProcess() as broker:
        result = broker_bench.publish_run(broker, 60, 3000, timing=True)
        received = broker.stats()['received']
    assert result['offered'] == 63  # each of 3 publishers adds one tail event
    assert result['lost'] == 0 and result['delivered'] == 63 and received == 63
    assert result['batched']  # the publishers found the broker's batch announcement
    assert result['p50_ms'] > 0


def test_relay_run_counts_what_the_subscriber_received():
    with RelayProcess() as relay:
        result = broker_bench.publish_run(relay, 60, 3000, timing=True)
    assert (result['offered'], result['delivered'], result['lost']) == (63, 63, 0)
    assert not result['batched']  # no control socket: events go one by one


def test_round_trips_count_scripts_and_transactions_once():
    lines = ['1.0 [0 127.0.0.1:1] "evalsha" "abc" "1"',
             '1.1 [0 lua] "zpopmin" "q"',
             '1.2 [0 127.0.0.1:1] "multi"',
             '1.3 [0 127.0.0.1:1] "hdel" "x" "t"',
             '1.4 [0 127.0.0.1:2] "get" "k"',
             '1.5 [0 127.0.0.1:1] "exec"',
             'OK']
    assert count_round_trips(lines) == {'evalsha': 1, 'multi/exec': 1, 'get': 1}


def test_statistics_helpers():
    assert median([3, 1, 2]) == 2
    assert percentile(list(range(1, 101)), 0.99) == 99
    assert percentile([5.0], 0.5) == 5.0


def test_report_writes_table_and_chart(tmp_path):
    figures = [Figure('1 drain', 'tasks', 'tasks/s', 2000.0, 1000.0, 2.0, target='>= 2x Huey',
                      met=True),
               Figure('5 latency', 'enqueue -> blocking get, p50', 'ms', 1.0, 50.0, 0.02,
                      target='p50 < 2 ms', met=False, note='a note')]
    text = report.markdown(figures, 'python scripts/bench/run_all.py',
                           datetime.datetime(2026, 1, 1), 1.0, 'chart.png')
    assert '| 1 drain | tasks | 2,000 tasks/s | 1,000 (Huey 3.5.4) | 2.00x ours / Huey' in text
    assert '**NOT met**' in text and 'Targets met:** 1 of 2' in text
    assert 'a note' in text and '2026-01-01' in text
    pytest.importorskip('matplotlib')
    assert report.chart(figures, str(tmp_path / 'chart.png'))
    assert (tmp_path / 'chart.png').stat().st_size > 0
