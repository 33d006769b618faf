"""One suite, every backend: memory, SQLite and Redis must behave the same."""
from __future__ import annotations

import gc
import os
import pickle
import socket
import threading
import time
import types

import pytest

from queue_core.exceptions import ConfigurationError, StorageError
from queue_core.storage import Storage, storage_from_url
from queue_core.storage import redis as redis_storage
from queue_core.storage.sqlite import SqliteStorage

from scripts.support.polling import wait_until


def run_threads(count: int, target) -> list:
    """Run ``target(i)`` in ``count`` threads started together; return their results."""
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def wait_until_blocked(storage: Storage, what: str, key: str = '') -> None:
    """On Redis, wait until a reader is really blocked, so the write must wake it."""
    client = getattr(storage, '_client', None)
    if client is None:
        return
    wait_until(lambda: client.info('clients')['blocked_clients'] > 0,
               message='blocked client')


# -- queue ---------------------------------------------------------------------
def test_queue_orders_by_priority_then_fifo(storage):
    for data, priority in [(b'a', 0), (b'b', 5), (b'c', 0), (b'd', 5), (b'e', -1),
                           (b'f', 10)]:
        storage.enqueue(data, priority)
    assert storage.queue_size() == 6
    assert storage.enqueued_items() == [b'f', b'b', b'd', b'a', b'c', b'e']
    assert storage.enqueued_items(limit=2) == [b'f', b'b']
    assert storage.enqueued_items(limit=0) == []
    assert [storage.dequeue() for _ in range(6)] == [b'f', b'b', b'd', b'a', b'c', b'e']
    assert storage.dequeue() is None
    assert storage.queue_size() == 0


def test_enqueue_many_keeps_fifo_within_priority_over_many_messages(storage):
    items = [(b'%d' % i, i % 3) for i in range(300)]
    storage.enqueue_many(items)
    storage.enqueue_many([])
    storage.enqueue(b'same', 0)
    storage.enqueue(b'same', 0)
    expected = ([d for d, p in items if p == 2] + [d for d, p in items if p == 1]
                + [d for d, p in items if p == 0] + [b'same', b'same'])
    assert storage.enqueued_items() == expected
    assert [storage.dequeue() for _ in range(302)] == expected


def test_enqueue_many_of_long_runs_keeps_every_message_in_order(storage):
    # Runs longer than the 1,000 messages one Redis RPUSH takes from the batch script.
    items = ([(b'a%d' % i, 0) for i in range(2500)] + [(b'b%d' % i, 4) for i in range(1200)]
             + [(b'c%d' % i, 0) for i in range(3)])
    storage.enqueue_many(items)
    expected = [d for d, p in items if p == 4] + [d for d, p in items if p == 0]
    assert storage.queue_size() == len(items)
    assert storage.enqueued_items() == expected
    assert [storage.dequeue() for _ in range(3)] == expected[:3]


def test_messages_are_bytes_kept_exactly(storage):
    payloads = [b'', b'\x00\x01\xff' * 100, bytes(range(256))]
    for data in payloads:
        storage.enqueue(data)
    assert [storage.dequeue() for _ in payloads] == payloads


def test_dequeue_and_claim_on_empty_queue_return_none(storage):
    assert storage.dequeue() is None
    assert storage.claim('w1', 100.0) is None
    assert storage.in_flight() == []


def test_claim_pops_first_message_and_records_it_in_flight(storage):
    storage.enqueue(b'low', 0)
    storage.enqueue(b'high', 9)
    record = storage.claim('w1', 1000.5)
    assert (record.owner, record.lease_until, record.data) == ('w1', 1000.5, b'high')
    assert storage.queue_size() == 1
    assert storage.in_flight() == [record]
    assert storage.release(record.token) is True
    assert storage.release(record.token) is False
    assert storage.in_flight() == []


def test_renew_extends_only_the_owners_leases(storage):
    for i in range(3):
        storage.enqueue(b'm%d' % i)
    first, second = storage.claim('w1', 100.0), storage.claim('w1', 100.0)
    third = storage.claim('w2', 100.0)
    assert storage.renew('w1', 500.0) == 2
    assert storage.renew('nobody', 500.0) == 0
    leases = {rec.token: rec.lease_until for rec in storage.in_flight()}
    assert leases == {first.token: 500.0, second.token: 500.0, third.token: 100.0}
    assert [rec.token for rec in storage.in_flight_of(['w2'])] == [third.token]
    assert [rec.token for rec in storage.in_flight() if rec.lease_until < 200.0] == [
        third.token]


def test_adopt_has_exactly_one_winner(storage, peer):
    storage.enqueue_many([(b'%d' % i, 0) for i in range(20)])
    records = [storage.claim('w1', 100.0) for _ in range(20)]
    for record in records:
        adopted = run_threads(2, lambda i: (storage, peer)[i].adopt(
            record.token, 'w1', 'rescuer-%d' % i, 500.0))
        winners = [a for a in adopted if a is not None]
        assert len(winners) == 1 and winners[0].data == record.data
    assert {rec.owner for rec in storage.in_flight()} <= {'rescuer-0', 'rescuer-1'}
    assert storage.adopt('no-such-token', 'w1', 'rescuer', 500.0) is None


def test_concurrent_claims_never_hand_out_a_message_twice(storage, peer):
    expected = {b'%d' % i for i in range(200)}
    storage.enqueue_many([(data, 0) for data in expected])

    def drain(i: int) -> list[bytes]:
        store = (storage, peer)[i % 2]
        got = []
        while (record := store.claim('w%d' % i, 100.0)) is not None:
            got.append(record.data)
        return got

    claimed = [data for got in run_threads(4, drain) for data in got]
    assert sorted(claimed) == sorted(expected)
    assert len(storage.in_flight()) == 200


def test_wait_for_work_wakes_on_enqueue_from_another_thread(storage):
    storage.wait_for_work(0.05)  # nothing queued: returns after the timeout
    woke = threading.Event()

    def wait() -> None:
        storage.wait_for_work(30)
        woke.set()

    thread = threading.Thread(target=wait)
    thread.start()
    wait_until_blocked(storage, 'work')
    storage.enqueue(b'job')
    assert woke.wait(10), 'wait_for_work was not woken by enqueue'
    thread.join()
    assert storage.claim('w1', 100.0).data == b'job'


# -- schedule ------------------------------------------------------------------
def test_schedule_orders_by_time_and_reads_due_items_once(storage):
    storage.add_to_schedule(b'c', 30.0)
    storage.add_to_schedule(b'a1', 10.0)
    storage.add_to_schedule(b'b', 20.0)
    storage.add_to_schedule(b'a2', 10.0)
    assert storage.scheduled_items() == [b'a1', b'a2', b'b', b'c']
    assert storage.scheduled_items(limit=1) == [b'a1']
    assert storage.schedule_size() == 4
    assert storage.read_schedule(5.0) == []
    assert storage.read_schedule(20.0) == [b'a1', b'a2', b'b']
    assert storage.read_schedule(20.0) == []
    assert storage.scheduled_items() == [b'c']


def test_concurrent_schedule_readers_never_share_a_message(storage, peer):
    expected = [b'%d' % i for i in range(200)]
    for i, data in enumerate(expected):
        storage.add_to_schedule(data, float(i))

    def read(i: int) -> list[bytes]:
        store = (storage, peer)[i % 2]
        return [d for ts in range(0, 200, 10) for d in store.read_schedule(float(ts))]

    got = [data for part in run_threads(4, read) for data in part]
    got += storage.read_schedule(1000.0)
    assert sorted(got) == sorted(expected)
    assert storage.schedule_size() == 0


# -- key/value -----------------------------------------------------------------
def test_put_peek_pop_delete(storage):
    assert storage.peek_data('k') is None
    assert not storage.has_data_for_key('k')
    storage.put_data('k', b'v1')
    storage.put_data('k', b'v2')
    storage.put_data('empty', b'')
    assert storage.peek_data('k') == b'v2'
    assert storage.peek_data('empty') == b''
    assert storage.has_data_for_key('k')
    assert storage.result_items() == {'k': b'v2', 'empty': b''}
    assert storage.pop_data('k') == b'v2'
    assert storage.pop_data('k') is None
    assert storage.delete_data('empty') is True
    assert storage.delete_data('empty') is False
    assert storage.result_store_size() == 0


def test_put_if_empty_stores_only_once(storage):
    assert storage.put_if_empty('lock', b'first') is True
    assert storage.put_if_empty('lock', b'second') is False
    assert storage.peek_data('lock') == b'first'
    storage.delete_data('lock')
    assert storage.put_if_empty('lock', b'third') is True
    assert storage.peek_data('lock') == b'third'


def test_values_with_ttl_expire(storage):
    storage.put_data('short', b'1', ttl=0.2)
    storage.put_data('keep', b'2')
    storage.put_data('long', b'3', ttl=60)
    assert storage.put_if_empty('lock', b'x', ttl=0.2) is True
    wait_until(lambda: storage.peek_data('short') is None, message='ttl expiry')
    wait_until(lambda: storage.result_store_size() == 2, message='size after expiry')
    assert storage.result_items() == {'keep': b'2', 'long': b'3'}
    assert storage.pop_data('short') is None
    assert not storage.has_data_for_key('short')
    wait_until(lambda: storage.put_if_empty('lock', b'y') is True, message='lock expiry')
    assert storage.delete_data('lock') is True
    storage.put_data('keep', b'4', ttl=0.2)  # replacing a value sets its new ttl
    wait_until(lambda: storage.peek_data('keep') is None, message='replaced value expiry')
    assert storage.peek_data('long') == b'3'


def test_wait_for_data_wakes_on_put_from_another_thread(storage):
    assert storage.wait_for_data('missing', 0.05) is False
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(storage.wait_for_data('r', 30)))
    thread.start()
    wait_until_blocked(storage, 'data', 'r')
    storage.put_data('r', b'done')
    thread.join(10)
    assert result == [True]
    storage.put_data('present', b'x')
    assert storage.wait_for_data('present', 0.05) is True
    assert storage.wait_for_data('missing', 0.05) is False


def test_incr_counts_expires_and_lives_apart_from_values(storage):
    assert storage.incr('hits') == 1
    assert storage.incr('hits', 5) == 6
    assert storage.incr('hits', -2) == 4
    assert storage.peek_data('hits') is None
    assert storage.result_store_size() == 0
    assert storage.incr('long', ttl=60) == 1
    assert storage.incr('long', ttl=60) == 2
    storage.incr('window', ttl=0.3)
    if storage.incr('window', ttl=60) == 2:  # the ttl is set only when the counter is made
        wait_until(lambda: storage.incr('window', 0) == 0, message='counter expiry')
    storage.flush_results()
    assert storage.incr('hits') == 5
    storage.flush_counters()
    assert storage.incr('hits') == 1


# -- sizes, flushing, isolation --------------------------------------------------
def fill(storage: Storage) -> None:
    """Put something in every part of ``storage``."""
    storage.enqueue(b'q1')
    storage.enqueue(b'q2')
    storage.add_to_schedule(b's', 10.0)
    storage.put_data('k', b'v')
    storage.incr('c')
    storage.claim('w1', 100.0)


def test_sizes_and_flushing_each_part(storage):
    fill(storage)
    assert (storage.queue_size(), storage.schedule_size(), storage.result_store_size(),
            len(storage.in_flight())) == (1, 1, 1, 1)
    storage.flush_queue()
    assert storage.queue_size() == 0 and storage.schedule_size() == 1
    storage.flush_schedule()
    assert storage.schedule_size() == 0 and storage.result_store_size() == 1
    storage.flush_results()
    assert storage.result_store_size() == 0 and storage.incr('c') == 2
    storage.flush_counters()
    assert storage.incr('c') == 1 and len(storage.in_flight()) == 1
    storage.flush_in_flight()
    assert storage.in_flight() == []


def test_flush_all_empties_everything(storage):
    fill(storage)
    storage.flush_all()
    assert (storage.queue_size(), storage.schedule_size(), storage.result_store_size(),
            storage.in_flight(), storage.incr('c')) == (0, 0, 0, [], 1)


def test_queues_with_different_names_do_not_see_each_other(storage, storage_url):
    other = storage_from_url(storage_url, 'other')
    try:
        fill(storage)
        assert (other.queue_size(), other.schedule_size(), other.result_store_size(),
                other.in_flight(), other.peek_data('k')) == (0, 0, 0, [], None)
        assert other.incr('c') == 1
        fill(other)
        other.flush_all()
        assert storage.queue_size() == 1 and storage.peek_data('k') == b'v'
        assert storage.incr('c') == 2
    finally:
        other.flush_all()
        other.close()


def test_close_then_use_again_reconnects(storage):
    storage.enqueue(b'before')
    storage.close()
    assert storage.dequeue() == b'before'
    storage.close()
    storage.close()
    storage.put_data('k', b'v')
    assert storage.peek_data('k') == b'v'


@pytest.mark.parametrize('url_fixture', ['sqlite_url', 'redis_url'])
def test_shared_storages_pickle_as_their_configuration(request, url_fixture):
    storage = storage_from_url(request.getfixturevalue(url_fixture), 'test')
    storage.put_data('k', b'v')
    copy = pickle.loads(pickle.dumps(storage))
    assert (type(copy), copy.name, copy.peek_data('k')) == (type(storage), 'test', b'v')
    copy.close()
    storage.close()


@pytest.mark.parametrize('url', [
    'nonsense', 'ftp://host/x', 'sqlite://', 'sqlite:///', 'sqlite:///:memory:',
    'sqlite:///no/such/directory/q.db', 'sqlite:///q.db?timeout=soon',
    'redis://localhost:notaport/0', 'redis://localhost:6380/notadb',
])
def test_bad_urls_raise_configuration_error_naming_the_url(url):
    with pytest.raises(ConfigurationError) as caught:
        storage_from_url(url)
    assert url in str(caught.value)


@pytest.mark.parametrize('url', [
    'redis://:secret@127.0.0.1:1/0', 'rediss://:secret@127.0.0.1:1/2',
    'unix://:secret@/nonexistent/redis.sock?db=1',
])
def test_redis_urls_build_lazily_and_unreachable_servers_raise_storage_error(url):
    store = storage_from_url(url, 'test')  # builds without connecting
    with pytest.raises(StorageError) as caught:
        store.peek_data('k')
    assert 'secret' not in str(caught.value)
    assert "'test'" in str(caught.value)


def test_redis_waits_longer_than_the_socket_timeout_do_not_fail(redis_url):
    store = storage_from_url(redis_url + '?socket_timeout=0.2', 'test')
    store.wait_for_work(0.6)  # returns early (allowed) instead of timing out the socket
    assert store.wait_for_data('missing', 0.6) is False
    store.put_data('k', b'v')
    assert store.wait_for_data('k', 0.6) is True
    store.close()


def test_sqlite_failure_is_a_storage_error_naming_the_file(tmp_path):
    store = SqliteStorage(str(tmp_path), 'test')  # a directory is no database
    with pytest.raises(StorageError) as caught:
        store.enqueue(b'x')
    assert str(tmp_path) in str(caught.value)


def test_sqlite_connections_of_finished_threads_are_closed(sqlite_url):
    store = storage_from_url(sqlite_url, 'test')
    store.enqueue(b'x')

    def open_files() -> int:
        gc.collect()  # a sqlite3 connection sits in a reference cycle with its cache
        return len(os.listdir('/proc/self/fd'))

    # The session's heap so far goes to the permanent generation, so each full collection
    # looks only at what this test made (31 full collections of it cost 3.7 s).
    gc.freeze()
    try:
        before = open_files()
        counts = []
        for _ in range(30):
            thread = threading.Thread(target=store.queue_size)
            thread.start()
            thread.join()
            counts.append(open_files())
    finally:
        gc.unfreeze()
    assert max(counts) < before + 5
    assert store.queue_size() == 1
    store.close()


def test_sqlite_relative_url_resolves_against_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = storage_from_url('sqlite:///rel.db', 'test')
    store.enqueue(b'x')
    assert store.path == str(tmp_path / 'rel.db')
    assert (tmp_path / 'rel.db').exists()
    store.close()


def test_claim_releases_previous_record_and_reads_counter_in_one_step(storage_url):
    storage = storage_from_url(storage_url, 'claimrel')
    storage.flush_all()
    storage.enqueue(b'a', 0)
    storage.enqueue(b'b', 0)
    first = storage.claim('w', 1e12, counter='c')
    assert first.counter == 0
    storage.incr('c', 2)
    second = storage.claim('w', 1e12, release=first.token, counter='c')
    assert second.data == b'b' and second.counter == 2
    assert [r.token for r in storage.in_flight()] == [second.token]
    assert storage.claim('w', 1e12, release=second.token) is None
    assert storage.in_flight() == []
    assert storage.claim('w', 1e12) is None


def test_peek_many_reads_several_keys(storage_url):
    storage = storage_from_url(storage_url, 'peekmany')
    storage.flush_all()
    storage.put_data('a', b'1')
    storage.put_data('c', b'3')
    assert storage.peek_many(['a', 'b', 'c']) == [b'1', None, b'3']
    assert storage.peek_many([]) == []


def test_every_reader_waiting_for_one_key_is_woken(storage):
    woke = []

    def reader():
        woke.append(storage.wait_for_data('shared', 20))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    if getattr(storage, '_client', None) is not None:
        wait_until(lambda: storage._client.info('clients')['blocked_clients'] >= 3,
                   message='three blocked readers')
    storage.put_data('shared', b'v')
    for thread in threads:
        thread.join(30)
    assert woke == [True, True, True]


def test_redis_connections_of_finished_threads_are_closed(redis_url):
    store = storage_from_url(redis_url, 'test')
    client = store._client

    def connected() -> int:
        gc.collect()
        return client.info('clients')['connected_clients']

    before = connected()
    for _ in range(5):
        thread = threading.Thread(target=store.put_data, args=('k', b'v'))
        thread.start()
        thread.join()
    wait_until(lambda: connected() <= before + 1, message='per-thread connections to close')
    store.close()


def test_due_items_are_moved_to_the_queue_once(storage):
    storage.add_to_schedule(b'late', 20.0)
    storage.add_to_schedule(b'early', 10.0)
    storage.add_to_schedule(b'future', 99.0)
    due = storage.due_items(50.0)
    assert [data for _, data in due] == [b'early', b'late']
    assert storage.schedule_size() == 3  # reading moves nothing
    ref = due[0][0]
    assert storage.move_to_queue(ref, b'early-v2', 5)
    assert not storage.move_to_queue(ref, b'early-v2', 5)  # a retry or a rival: no-op
    assert storage.enqueued_items() == [b'early-v2']
    assert storage.move_to_queue(due[1][0], None)  # dropped, not queued
    assert storage.queue_size() == 1 and storage.scheduled_items() == [b'future']


def test_adopt_hands_a_record_to_one_recoverer_and_requeue_moves_it_once(storage):
    storage.enqueue(b'job', 0)
    record = storage.claim('dead-worker', 1.0)
    adopted = storage.adopt(record.token, 'dead-worker', 'rescuer', 1e12)
    assert (adopted.owner, adopted.data) == ('rescuer', b'job')
    assert storage.adopt(record.token, 'dead-worker', 'rival', 1e12) is None
    assert [r.owner for r in storage.in_flight()] == ['rescuer']
    assert storage.requeue_in_flight(record.token, b'job-again', 0)
    assert not storage.requeue_in_flight(record.token, b'job-again', 0)
    assert storage.in_flight() == [] and storage.enqueued_items() == [b'job-again']


@pytest.mark.parametrize('spin', [0.0, 0.0002, 5.0])
def test_redis_enqueue_waits_for_its_reply_actively_or_asleep_alike(redis_url, spin):
    store = storage_from_url(redis_url, 'test')
    store.enqueue_spin = spin
    for index in range(20):
        store.enqueue(b'task-%d' % index)
    assert [store.dequeue() for _ in range(20)] == [b'task-%d' % i for i in range(20)]
    store.close()


def test_an_active_wait_for_a_reply_ends_when_it_is_readable_or_at_its_bound():
    left, right = socket.socketpair()
    conn = types.SimpleNamespace(_sock=left)
    try:
        started = time.monotonic()
        redis_storage._await_reply(conn, 0.05)  # nothing comes: gives up at the bound
        assert time.monotonic() - started >= 0.05
        right.sendall(b'+OK\r\n')
        started = time.monotonic()
        redis_storage._await_reply(conn, 30.0)  # readable: returns at once
        assert time.monotonic() - started < 10.0
        redis_storage._await_reply(types.SimpleNamespace(_sock=None), 30.0)  # not connected
    finally:
        left.close()
        right.close()
