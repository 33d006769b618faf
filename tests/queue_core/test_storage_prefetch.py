"""The shared storage suite, continued: prefetching claims, hand-back to the head of the
queue, and the Redis layout (one list per priority, one record per in-flight task)."""
from __future__ import annotations

import pytest

from queue_core.storage import storage_from_url


def test_claim_many_takes_up_to_limit_in_queue_order_each_with_its_own_record(storage):
    for i in range(5):
        storage.enqueue(b'job-%d' % i, 0)
    first = storage.claim_many('w1', 1000.5, 3)
    assert [rec.data for rec in first] == [b'job-0', b'job-1', b'job-2']
    assert len({rec.token for rec in first}) == 3
    assert all(rec.owner == 'w1' and rec.lease_until == 1000.5 for rec in first)
    rest = storage.claim_many('w2', 2000.0, 10)
    assert [rec.data for rec in rest] == [b'job-3', b'job-4']
    held = {rec.token: (rec.owner, rec.data) for rec in storage.in_flight()}
    assert held == {rec.token: (rec.owner, rec.data) for rec in first + rest}
    assert storage.queue_size() == 0  # pending counts what no worker holds
    assert storage.claim_many('w1', 1000.5, 4) == []


def test_claim_many_crosses_priorities_highest_first(storage):
    storage.enqueue_many([(b'low', -1), (b'mid-1', 0), (b'high', 5), (b'mid-2', 0)])
    claimed = storage.claim_many('w', 100.0, 3)
    assert [rec.data for rec in claimed] == [b'high', b'mid-1', b'mid-2']
    assert storage.enqueued_items() == [b'low']
    storage.enqueue(b'high-again', 5)
    assert storage.enqueued_items() == [b'high-again', b'low']
    assert [rec.data for rec in storage.claim_many('w', 100.0, 5)] == [b'high-again', b'low']


def test_tokens_sort_in_claim_order_across_claims(storage):
    for i in range(6):
        storage.enqueue(b'%d' % i, 0)
    tokens = [rec.token for rec in storage.claim_many('w', 100.0, 2)]
    tokens += [rec.token for rec in storage.claim_many('w', 100.0, 1)]
    tokens += [storage.claim('w', 100.0).token]
    tokens += [rec.token for rec in storage.claim_many('w', 100.0, 2)]
    assert tokens == sorted(tokens) and len(set(tokens)) == 6
    by_token = sorted(storage.in_flight(), key=lambda rec: rec.token)
    assert [rec.data for rec in by_token] == [b'%d' % i for i in range(6)]


def test_claim_many_releases_finished_records_first_even_when_empty(storage):
    storage.enqueue_many([(b'a', 0), (b'b', 0)])
    done = storage.claim_many('w', 100.0, 2)
    assert storage.claim_many('w', 100.0, 2, release=[rec.token for rec in done]) == []
    assert storage.in_flight() == []


def test_unstarted_tasks_handed_back_in_reverse_go_to_the_head_in_order(storage):
    storage.enqueue_many([(b'a', 0), (b'b', 0), (b'c', 0), (b'd', 0), (b'urgent', 3)])
    urgent, a, b, c = storage.claim_many('w', 100.0, 4)
    assert urgent.data == b'urgent'
    storage.enqueue(b'e', 0)
    for rec in (c, b):  # the worker died after starting a: b and c never ran
        assert storage.requeue_in_flight(rec.token, rec.data, 0, head=True)
    assert storage.enqueued_items() == [b'b', b'c', b'd', b'e']
    assert not storage.requeue_in_flight(b.token, b.data, 0, head=True)  # once only
    assert {rec.data for rec in storage.in_flight()} == {b'urgent', b'a'}
    assert storage.queue_size() == 4


def test_fifo_across_producers_within_a_priority(storage, peer):  # noqa: F811
    for i in range(6):
        (storage if i % 2 else peer).enqueue(b'%d' % i, 1)
    claimed = storage.claim_many('w', 100.0, 6)
    assert [rec.data for rec in claimed] == [b'%d' % i for i in range(6)]


def test_renew_extends_every_record_of_an_owner_and_expiry_lists_them(storage):
    storage.enqueue_many([(b'a', 0), (b'b', 0), (b'c', 0)])
    storage.claim_many('w1', 10.0, 2)
    storage.claim_many('w2', 10.0, 1)
    assert storage.renew('w1', 500.0) == 2
    assert {rec.data: rec.lease_until for rec in storage.in_flight()} == {
        b'a': 500.0, b'b': 500.0, b'c': 10.0}
    assert [rec.data for rec in storage.in_flight() if rec.lease_until < 100.0] == [b'c']


@pytest.fixture
def redis_storage(redis_url):
    store = storage_from_url(redis_url, 'layout')
    yield store
    store.flush_all()
    store.close()


def command_counts(store) -> dict[str, int]:
    stats = store._client.info('commandstats')
    return {name.split('_', 1)[1]: row['calls'] for name, row in stats.items()}


def commands_during(store, action) -> dict[str, int]:
    """The Redis commands ``action`` made the server run (a script's inner ones too)."""
    before = command_counts(store)
    action()
    after = command_counts(store)
    return {name: after[name] - before.get(name, 0) for name in after
            if after[name] - before.get(name, 0) and name != 'info'}


def test_redis_enqueue_is_one_push_like_hueys(redis_storage):
    redis_storage.enqueue(b'first', 0)  # an empty level is also indexed, and wakes
    assert commands_during(redis_storage, lambda: redis_storage.enqueue(b'next', 0)) == {
        'rpush': 1}
    redis_storage.enqueue(b'urgent', 5)
    assert commands_during(redis_storage, lambda: redis_storage.enqueue(b'more', 5)) == {
        'evalsha': 1, 'rpush': 1}


def test_redis_priority_0_messages_count_before_their_level_is_indexed(redis_storage):
    """A producer that died between its RPUSH and the indexing call left a message in
    priority 0's list that the level index does not name: it is queued all the same."""
    redis_storage.enqueue_many([(b'high', 2), (b'low', -1)])
    redis_storage._client.rpush(redis_storage._zero, b'orphan-a', b'orphan-b')
    assert redis_storage.queue_size() == 4
    assert redis_storage.enqueued_items() == [b'high', b'orphan-a', b'orphan-b', b'low']
    assert redis_storage.enqueued_items(limit=2) == [b'high', b'orphan-a']
    claimed = redis_storage.claim_many('w', 1e12, 3)
    assert [rec.data for rec in claimed] == [b'high', b'orphan-a', b'orphan-b']
    redis_storage._client.rpush(redis_storage._zero, b'orphan-c')
    assert redis_storage.dequeue() == b'orphan-c'
    redis_storage._client.rpush(redis_storage._zero, b'orphan-d')
    redis_storage.flush_queue()
    assert redis_storage.queue_size() == 0 and redis_storage.enqueued_items() == []


def test_redis_claim_of_many_costs_the_same_commands_as_a_claim_of_one(redis_storage):
    redis_storage.enqueue_many([(b'%d' % i, 0) for i in range(40)])
    one = commands_during(redis_storage,
                          lambda: redis_storage.claim_many('w', 1e12, 1, counter='c'))
    sixteen = commands_during(redis_storage,
                              lambda: redis_storage.claim_many('w', 1e12, 16, counter='c'))
    assert sixteen == one
    assert sum(one.values()) <= 10


def test_redis_lease_of_an_owner_holding_nothing_is_dropped(redis_storage):
    redis_storage.enqueue(b'a', 0)
    (record,) = redis_storage.claim_many('w', 5.0, 1)
    redis_storage.release(record.token)
    assert redis_storage._client.zcard(redis_storage._in_flight_keys[1]) == 1
    assert redis_storage.in_flight() == []  # and its lapsed lease entry goes
    assert redis_storage._client.zcard(redis_storage._in_flight_keys[1]) == 0
