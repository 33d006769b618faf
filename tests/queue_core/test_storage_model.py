"""Random sequences of operations give the same answers on SQLite and Redis as in memory,
prefetching claims and hand-backs to the head of the queue included."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_core.storage import MemoryStorage, Storage, storage_from_url

keys = st.sampled_from(['a', 'b', 'c'])
payloads = st.binary(max_size=6)

operations = st.one_of(
    st.tuples(st.just('enqueue'), payloads, st.integers(-2, 2)),
    st.tuples(st.just('enqueue_many'),
              st.lists(st.tuples(payloads, st.integers(-2, 2)), max_size=4)),
    st.tuples(st.just('dequeue')),
    st.tuples(st.just('claim'), st.sampled_from(['w1', 'w2'])),
    st.tuples(st.just('claim_many'), st.sampled_from(['w1', 'w2']), st.integers(0, 4),
              st.booleans()),
    st.tuples(st.just('hand_back_newest'), st.sampled_from(['w1', 'w2']),
              st.integers(-2, 2)),
    st.tuples(st.just('release_oldest')),
    st.tuples(st.just('add_to_schedule'), payloads, st.integers(0, 5)),
    st.tuples(st.just('read_schedule'), st.integers(0, 5)),
    st.tuples(st.just('put_data'), keys, payloads),
    st.tuples(st.just('put_if_empty'), keys, payloads),
    st.tuples(st.just('pop_data'), keys),
    st.tuples(st.just('delete_data'), keys),
    st.tuples(st.just('incr'), keys, st.integers(-3, 3)),
    st.tuples(st.just('flush_queue')),
)


def apply(storage: Storage, op: tuple) -> object:
    """Run one operation and return what an observer can compare across backends."""
    name, *args = op
    if name == 'claim':
        record = storage.claim(args[0], 100.0)
        return None if record is None else (record.owner, record.data)
    if name == 'claim_many':  # optionally releasing the owner's first record on the way
        owner, limit, release = args
        mine = sorted((rec for rec in storage.in_flight() if rec.owner == owner),
                      key=lambda rec: rec.token)
        drop = [mine[0].token] if release and mine else []
        return [(rec.owner, rec.data)
                for rec in storage.claim_many(owner, 100.0, limit, release=drop)]
    if name == 'hand_back_newest':  # a prefetched task that never started goes back
        owner, priority = args
        mine = sorted((rec for rec in storage.in_flight() if rec.owner == owner),
                      key=lambda rec: rec.token)
        if not mine:
            return None
        return storage.requeue_in_flight(mine[-1].token, mine[-1].data, priority, head=True)
    if name == 'release_oldest':
        records = sorted(storage.in_flight(), key=lambda rec: rec.data)
        return storage.release(records[0].token) if records else None
    return getattr(storage, name)(*args)


def snapshot(storage: Storage) -> tuple:
    """Everything observable without changing the storage."""
    return (storage.enqueued_items(), storage.scheduled_items(), storage.result_items(),
            storage.queue_size(), storage.schedule_size(), storage.result_store_size(),
            sorted((rec.owner, rec.data) for rec in storage.in_flight()))


@pytest.fixture(params=['sqlite', 'redis'])
def shared_storage(request, tmp_path):
    """A SQLite or Redis storage, reused (and flushed) across hypothesis examples."""
    if request.param == 'sqlite':
        url = 'sqlite:///' + str(tmp_path / 'model.db')
    else:
        url = request.getfixturevalue('redis_url')
    store = storage_from_url(url, 'model')
    yield store
    store.flush_all()
    store.close()


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operations, max_size=25))
def test_backend_matches_the_memory_model(shared_storage, ops):
    shared_storage.flush_all()
    model = MemoryStorage('model')
    for op in ops:
        assert apply(shared_storage, op) == apply(model, op), op
    assert snapshot(shared_storage) == snapshot(model)
