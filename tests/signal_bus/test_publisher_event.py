"""Event bodies built from a task: plain msgpack values, truncation, exceptions (SPEC §7)."""
from __future__ import annotations

import datetime

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from signal_bus import wire
from signal_bus.body import (MAX_ARGUMENT_BYTES, MAX_TRACEBACK_CHARS, build_body, encode_body,
                              exception_map)

from tests.signal_bus.bus_helpers import FakeTask


class Opaque:
    def __repr__(self) -> str:
        return '<Opaque thing>'


class Unrepresentable:
    def __repr__(self) -> str:
        raise RuntimeError('no repr for you')


def encoded(task, signal='enqueued', exc=None, source='app'):
    body = build_body(signal, task, exc, source, host='h', pid=7, now=12.5)
    return msgpack.unpackb(encode_body(body), raw=False)


def test_body_has_every_wire_key():
    task = FakeTask('m.f', args=(1,), kwargs={'a': 2}, retries=3, tseq=4, final=True)
    assert encoded(task) == {
        'signal': 'enqueued', 'task_id': task.id, 'task_name': 'm.f', 'tseq': 4, 'ts': 12.5,
        'host': 'h', 'pid': 7, 'source': 'app', 'args': [1], 'kwargs': {'a': 2},
        'retries': 3, 'final': True}


def test_values_become_plain_msgpack():
    when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    task = FakeTask(args=(when, (1, 2), {3}, frozenset([4]), Opaque(), b'raw',
                          datetime.date(2024, 1, 2)),
                    kwargs={'big': 2 ** 70, 'bad': Unrepresentable(), 'n': {'t': (5,)}})
    body = encoded(task)
    assert body['args'] == ['2024-05-06T07:08:09+00:00', [1, 2], [3], [4], '<Opaque thing>',
                            b'raw', '2024-01-02']
    assert body['kwargs']['big'] == str(2 ** 70)
    assert body['kwargs']['bad'].startswith('<unrepresentable ')
    assert body['kwargs']['n'] == {'t': [5]}


def test_large_arguments_are_replaced_by_their_size():
    task = FakeTask(args=('x' * (MAX_ARGUMENT_BYTES + 10),), kwargs={'small': 1})
    body = encoded(task)
    assert body['args'] == {'truncated': MAX_ARGUMENT_BYTES + 10 + 6}
    assert body['kwargs'] == {'small': 1}
    task = FakeTask(kwargs={'k': ['y' * 1000] * 100})
    assert set(encoded(task)['kwargs']) == {'truncated'}


def test_task_without_tseq_sends_nil_and_others_send_theirs():
    assert encoded(FakeTask(tseq=None), source='consumer')['tseq'] is None
    assert encoded(FakeTask(tseq=109), source='consumer')['tseq'] == 109
    assert encoded(FakeTask(tseq=9), source='worker')['tseq'] == 9


def test_exception_becomes_type_message_traceback():
    try:
        raise KeyError('missing')
    except KeyError as exc:
        body = encoded(FakeTask(), 'error', exc, 'worker')
    assert body['exc']['type'] == 'KeyError' and body['exc']['message'] == "'missing'"
    assert 'raise KeyError' in body['exc']['traceback']


def test_long_tracebacks_keep_their_end():
    def recurse(depth):
        if depth == 0:
            raise ValueError('bottom')
        recurse(depth - 1)
    try:
        recurse(600)
    except ValueError as exc:
        data = exception_map(exc)
    assert len(data['traceback']) <= MAX_TRACEBACK_CHARS + 4
    assert data['traceback'].rstrip().endswith('ValueError: bottom')


@given(st.recursive(st.none() | st.integers() | st.floats() | st.text() | st.binary()
                    | st.datetimes() | st.booleans(),
                    lambda inner: st.lists(inner) | st.tuples(inner, inner)
                    | st.dictionaries(st.text() | st.integers(), inner)
                    | st.frozensets(st.integers()), max_leaves=15))
def test_any_argument_encodes_to_a_map_the_broker_accepts(value):
    body = build_body('complete', FakeTask(args=(value,), kwargs={'v': value}), None, 'app',
                      host='h', pid=1)
    frame = encode_body(body)
    wire.check_body(frame)
    assert wire.decode_body(frame)['signal'] == 'complete'
