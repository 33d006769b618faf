"""Storages shared by real processes, and a Redis server that restarts under a storage."""
from __future__ import annotations

import multiprocessing
import queue as queue_module

import pytest
import redis

from queue_core.exceptions import StorageError
from queue_core.storage import Storage, storage_from_url

from scripts.support.polling import wait_until
from scripts.support.redis_server import RedisServer


PROCESSES = 3
MESSAGES = 300  # per process


def produce_and_claim(store: Storage, worker: int, start, results) -> None:
    """Enqueue this worker's messages while claiming, then drain until every producer is
    done and the queue is empty; report what was claimed and which tokens are still held."""
    claimed, held = [], []

    def take() -> bool:
        record = store.claim('w%d' % worker, 1e12)
        if record is None:
            return False
        claimed.append(record.data)
        if len(claimed) % 2:
            store.release(record.token)
        else:
            held.append(record.token)
        return True

    start.wait(30)
    for i in range(MESSAGES):
        store.enqueue(b'%d:%d' % (worker, i), i % 3)
        if i % 2:
            take()
    store.incr('producers-done')
    while True:
        all_done = store.incr('producers-done', 0) == PROCESSES
        if not take():
            if all_done:
                break
            store.wait_for_work(0.05)
    results.put((worker, claimed, held))


def spawned_worker(url: str, worker: int, start, results) -> None:
    """Entry point of a spawned process: builds its own storage from the URL."""
    produce_and_claim(storage_from_url(url, 'shared'), worker, start, results)


def forked_worker(store: Storage, worker: int, start, results) -> None:
    """Entry point of a forked process: reuses the parent's storage object after a reset."""
    store.reset_after_fork()
    produce_and_claim(store, worker, start, results)


@pytest.fixture(params=['sqlite', 'redis'])
def shared_url(request, tmp_path):
    """A storage URL several processes can share."""
    if request.param == 'sqlite':
        return 'sqlite:///' + str(tmp_path / 'shared.db')
    return request.getfixturevalue('redis_url')


@pytest.mark.parametrize('method', ['spawn', 'fork'])
def test_processes_enqueueing_and_claiming_lose_nothing_and_share_nothing(shared_url,
                                                                         method):
    store = storage_from_url(shared_url, 'shared')
    store.flush_all()
    store.enqueue(b'opened-before-fork')  # the parent's connection exists when it forks
    assert store.dequeue() == b'opened-before-fork'
    ctx = multiprocessing.get_context(method)
    results, start = ctx.Queue(), ctx.Barrier(PROCESSES)
    if method == 'spawn':
        procs = [ctx.Process(target=spawned_worker, args=(shared_url, w, start, results))
                 for w in range(PROCESSES)]
    else:
        procs = [ctx.Process(target=forked_worker, args=(store, w, start, results))
                 for w in range(PROCESSES)]
    for proc in procs:
        proc.start()
    try:
        reports = [results.get(timeout=60) for _ in procs]
    except queue_module.Empty:
        pytest.fail('a worker process did not report; exit codes %s'
                    % [proc.exitcode for proc in procs])
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    claimed = [data for _, got, _ in reports for data in got]
    expected = [b'%d:%d' % (w, i) for w in range(PROCESSES) for i in range(MESSAGES)]
    assert len(claimed) == len(set(claimed)), 'a message was claimed twice'
    assert sorted(claimed) == sorted(expected), 'a message was lost'
    assert store.queue_size() == 0
    held = {token for _, _, tokens in reports for token in tokens}
    assert {rec.token for rec in store.in_flight()} == held
    store.flush_all()
    store.close()


def enqueue_without_reset(store: Storage) -> None:
    """Entry point of a forked child that uses the parent's storage without resetting it."""
    store.enqueue(b'from-child')
    store.put_data('child', b'done')


def test_forked_child_opens_its_own_connection_even_without_reset(shared_url):
    store = storage_from_url(shared_url, 'shared')
    store.flush_all()
    store.enqueue(b'from-parent')
    proc = multiprocessing.get_context('fork').Process(target=enqueue_without_reset,
                                                       args=(store,))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert store.wait_for_data('child', 10) is True
    assert store.enqueued_items() == [b'from-parent', b'from-child']
    store.flush_all()
    store.close()


def open_fresh_file(url: str, start) -> None:
    """Entry point of a process that opens a new SQLite file at the same moment as others."""
    store = storage_from_url(url, 'fresh')
    start.wait(30)
    store.enqueue(b'x')


def test_processes_opening_a_fresh_sqlite_file_together_all_succeed(tmp_path):
    ctx = multiprocessing.get_context('fork')
    for round_ in range(15):
        url = 'sqlite:///' + str(tmp_path / ('fresh%d.db' % round_))
        start = ctx.Barrier(4)
        procs = [ctx.Process(target=open_fresh_file, args=(url, start)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        assert [proc.exitcode for proc in procs] == [0] * 4
        assert storage_from_url(url, 'fresh').queue_size() == 4


@pytest.fixture
def durable_redis():
    """A private Redis with an fsync-always append-only file, which the test restarts."""
    server = RedisServer(appendonly=True).start()
    yield server
    server.close()


def test_redis_restart_keeps_data_and_outage_is_a_storage_error(durable_redis):
    store = storage_from_url(durable_redis.url, 'durable')
    store.enqueue_many([(b'a', 0), (b'b', 5), (b'c', 0)])
    store.add_to_schedule(b'later', 50.0)
    store.put_data('result', b'42')
    store.incr('hits', 3)
    record = store.claim('w1', 100.0)
    assert store.wait_for_data('result', 1) is True  # keeps a pub/sub connection open

    durable_redis.restart()
    assert store.enqueued_items() == [b'a', b'c']
    assert store.scheduled_items() == [b'later']
    assert store.peek_data('result') == b'42'
    assert store.incr('hits') == 4
    assert store.in_flight() == [record]
    assert store.wait_for_data('result', 1) is True

    durable_redis.stop()
    for operation in (lambda: store.enqueue(b'lost'), lambda: store.claim('w1', 1.0),
                      lambda: store.peek_data('result'), lambda: store.wait_for_work(0.1),
                      lambda: store.wait_for_data('other', 0.1)):
        with pytest.raises(StorageError) as caught:
            operation()
        assert not isinstance(caught.value, redis.RedisError)
        assert 'durable' in str(caught.value)

    durable_redis.start()
    store.enqueue(b'd', 9)
    assert store.claim('w2', 100.0).data == b'd'
    assert store.queue_size() == 2
    store.put_data('after', b'1')
    assert store.wait_for_data('after', 1) is True
    wait_until(lambda: store.peek_data('after') == b'1')
    store.close()
