"""A Redis restart under a running consumer: logged, retried with backoff, nothing lost."""
from __future__ import annotations

import signal

import pytest

from scripts.support.polling import wait_until
from scripts.support.redis_server import RedisServer
from tests.end_to_end.consumer_harness import Run


C = 'complete'


@pytest.fixture
def durable_redis():
    server = RedisServer(appendonly=True).start()
    yield server
    server.close()


def test_restarting_redis_under_the_consumer_loses_no_task(tmp_path, durable_redis):
    run = Run(tmp_path, durable_redis.url)
    try:
        before = [run.app.sleep_for(0.2) for _ in range(6)]
        consumer = run.consumer('-w', '2', '--lease', '2', '--requeue-interrupted', '-s', '0.2')
        wait_until(lambda: run.finals(), 20, message='a first task to finish\n' + run.logs())
        durable_redis.stop()
        wait_until(lambda: 'storage unavailable' in consumer.log(), 20,
                   message='the consumer to notice the outage\n' + run.logs())
        durable_redis.start()
        after = [run.app.add(i, i) for i in range(3)]
        ids = [h.id for h in before + after]
        wait_until(lambda: len(run.finals()) == len(ids), 40,
                   message='every task final after the restart\n' + run.logs())
        finals = run.finals()
        assert sorted(finals) == sorted(ids)
        assert all(signals == [C] for signals in finals.values()), finals
        assert [h.get(blocking=True, timeout=5) for h in after] == [0, 2, 4]
        assert 'storage is reachable again' in consumer.log()
        assert consumer.proc is not None and consumer.proc.poll() is None
        consumer.send(signal.SIGINT)
        assert consumer.wait(20) == 0
        assert run.q.in_flight() == []
    finally:
        run.close()
