"""Stored task messages with fields of the wrong types are quarantined: moved aside, never
executed, ended with a final ``error`` event of type ``queue_core.MalformedTask`` whose task
id is the message's id as a string, and a log line (issue 10 item 6)."""
from __future__ import annotations

import datetime
import logging

import pytest

from queue_core import MalformedTask, TaskQueue, TaskException
from queue_core.quarantine import CORRUPT_PREFIX, check_message
from queue_core.serializer import qualified_name

GOOD = {'id': 'abc', 'name': 'tests.ok'}


@pytest.fixture
def q():
    queue = TaskQueue('quarantine', storage='memory://')
    ran: list = []

    @queue.task()
    def ok(*args):
        ran.append(args)

    queue.ran = ran
    queue.ok = ok
    queue.sunk = []
    queue.add_signal_sink(lambda sig, task, exc, source: queue.sunk.append(
        (sig, task.id, qualified_name(type(exc)) if exc else None, source, task.final)))
    return queue


def store(q, **fields):
    message = dict(GOOD, name=q.ok.registry_name, **fields)
    q.storage.enqueue(q.serializer.serialize(message), 0)
    return message


@pytest.mark.parametrize('fields, problem', [
    ({'eta': 'tomorrow'}, 'eta must be datetime'),
    ({'retries': 'abc'}, 'retries must be int'),
    ({'timeout': 'x'}, 'timeout must be int or float'),
    ({'priority': 'hi'}, 'priority must be int'),
    ({'id': 42}, 'id must be str'),
    ({'args': 'not-a-list'}, 'args must be list or tuple'),
    ({'kwargs': [1]}, 'kwargs must be dict'),
    ({'retries': True}, 'retries must be int'),
    ({'on_complete': {'id': 'x', 'name': 'y', 'retry_delay': 'soon'}},
     'on_complete.retry_delay must be int or float'),
])
def test_a_message_with_wrongly_typed_fields_is_quarantined_with_a_final_error(
        q, fields, problem, caplog):
    message = store(q, **fields)
    with caplog.at_level(logging.ERROR, logger='queue_core'):
        assert q.claim('host:1:w') is None
    task_id = str(message['id'])
    assert q.ran == []
    assert q.sunk == [('error', task_id, 'queue_core.MalformedTask', 'consumer', True)]
    corrupt = [k for k in q.storage.result_items() if k.startswith(CORRUPT_PREFIX)]
    assert len(corrupt) == 1 and q.in_flight() == []
    line = [r.getMessage() for r in caplog.records if 'malformed task message' in r.getMessage()]
    assert len(line) == 1 and task_id in line[0] and problem in line[0]
    assert corrupt[0] in line[0] and 'not executed' in line[0]
    with pytest.raises(TaskException) as raised:
        q.result(task_id, blocking=False)
    assert 'MalformedTask' in str(raised.value.metadata['error'])


def test_a_well_formed_message_runs(q):
    store(q, args=[1, 2], retries=2, priority=3, timeout=1.5,
          eta=datetime.datetime(2000, 1, 1))
    task, token = q.claim('host:1:w')
    q.execute(task)
    assert q.ran == [(1, 2)] and [s[0] for s in q.sunk] == ['executing', 'complete']


def test_an_undecodable_message_is_moved_aside_without_an_event(q):
    q.storage.enqueue(b'\xc1 not msgpack', 0)
    q.storage.enqueue(q.serializer.serialize(['a', 'list']), 0)
    assert q.claim('host:1:w') is None
    assert q.sunk == []
    assert len([k for k in q.storage.result_items() if k.startswith(CORRUPT_PREFIX)]) == 2


def test_check_message_names_missing_fields():
    with pytest.raises(MalformedTask, match='name is missing'):
        check_message({'id': 'x'})
    check_message(dict(GOOD, expires=datetime.timedelta(seconds=5), chord={'id': 'c'}))
