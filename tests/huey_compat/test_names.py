"""Names: Huey's classes, submodules and exceptions under ``queue_core.huey``."""
from __future__ import annotations

import importlib

import pytest

import queue_core
from queue_core import TaskQueue
from queue_core.huey import (Huey, MemoryHuey, PriorityRedisHuey, RedisExpireHuey, RedisHuey,
                             SqliteHuey)
from queue_core.huey import exceptions as huey_exceptions
from queue_core.huey.storage import RedisConnection


def test_every_huey_class_is_a_task_queue():
    for cls in (Huey, MemoryHuey, SqliteHuey, RedisHuey, PriorityRedisHuey, RedisExpireHuey):
        assert issubclass(cls, TaskQueue)


@pytest.mark.parametrize('module, names', [
    ('api', ['Huey', 'RedisHuey', 'crontab', 'group', 'chord', 'Result', 'ResultGroup',
             'Task', 'TaskWrapper', 'TaskLock', 'RateLimit']),
    ('signals', ['SIGNAL_ENQUEUED', 'SIGNAL_RATE_LIMITED', 'SIGNAL_INTERRUPTED']),
    ('exceptions', ['HueyException', 'TaskLockedException', 'TaskException', 'RetryTask',
                    'CancelExecution', 'RateLimitExceeded', 'ResultTimeout', 'TaskTimeout',
                    'ConfigurationError']),
    ('storage', ['MemoryStorage', 'SqliteStorage', 'RedisStorage', 'BaseStorage']),
    ('serializer', ['Serializer', 'SignedSerializer']),
    ('utils', ['Error', 'SKIPPED', 'normalize_time', 'utcnow']),
    ('constants', ['WORKER_THREAD', 'WORKER_PROCESS', 'WORKER_GREENLET', 'EmptyData']),
])
def test_submodules_export_what_huey_applications_import(module, names):
    loaded = importlib.import_module('queue_core.huey.' + module)
    missing = [name for name in names if not hasattr(loaded, name)]
    assert not missing


def test_huey_exception_names_are_our_classes_so_huey_excepts_catch_ours():
    assert huey_exceptions.HueyException is queue_core.QueueError
    assert huey_exceptions.TaskLockedException is queue_core.TaskLocked
    for name in ('TaskException', 'RetryTask', 'CancelExecution', 'RateLimitExceeded',
                 'ResultTimeout', 'TaskTimeout', 'ConfigurationError'):
        assert getattr(huey_exceptions, name) is getattr(queue_core, name)
    with pytest.raises(huey_exceptions.TaskLockedException):
        raise queue_core.TaskLocked('held')


def test_huey_constructor_arguments_are_accepted(tmp_path):
    q = SqliteHuey('app', filename=str(tmp_path / 'app.db'), results=True,
                   store_none=True, utc=False, store_intermediate_errors=False,
                   compression=True)
    assert q.storage.path == str(tmp_path / 'app.db')
    assert q.store_none and not q.utc and not q.store_intermediate_errors
    assert bool(MemoryHuey('empty'))  # an empty queue is still true, as in Huey


def test_redis_huey_connects_with_host_port_db_and_exposes_conn(redis_server):
    q = RedisHuey('app', host='127.0.0.1', port=redis_server.port, db=0)
    assert isinstance(q.storage, RedisConnection)
    assert q.storage.conn.ping()
    assert q.get_storage().conn.ping()


def test_redis_huey_by_url_and_priority_and_expiring_variants(redis_url):
    for cls in (RedisHuey, PriorityRedisHuey, RedisExpireHuey):
        q = cls('variant', url=redis_url)

        @q.task()
        def add(a, b):
            return a + b

        handle = add(1, 2)
        task = q.dequeue()
        q.execute(task)
        assert handle.get() == 3
        q.flush()


def test_redis_expire_huey_keeps_a_result_readable_until_it_expires(redis_url):
    q = RedisExpireHuey('expiring', url=redis_url, expire_time=60)

    @q.task()
    def value():
        return 'kept'

    handle = value()
    q.execute(q.dequeue())
    assert handle.get() == 'kept'
    handle.reset()
    assert handle.get() == 'kept'
    assert q.result_ttl == 60


def test_over_determined_redis_connection_is_a_configuration_error():
    with pytest.raises(queue_core.ConfigurationError):
        RedisHuey('app', url='redis://127.0.0.1:1/0', host='127.0.0.1')


def test_create_consumer_maps_huey_options_and_refuses_unknown_ones():
    q = MemoryHuey('consumer')
    consumer = q.create_consumer(workers=3, worker_type='thread', periodic=False,
                                 check_worker_health=False, extra_locks='a, b',
                                 initial_delay=0.5, backoff=1.5, max_delay=4)
    config = consumer.config
    assert (config.workers, config.worker_type, config.periodic) == (3, 'thread', False)
    assert config.health_check_interval is None and config.extra_locks == ('a', 'b')
    assert (config.backoff_initial, config.backoff_factor, config.backoff_max) == (0.5, 1.5, 4)
    with pytest.raises(queue_core.ConfigurationError):
        q.create_consumer(no_such_option=1)
    with pytest.raises(queue_core.ConfigurationError):
        q.create_consumer(worker_type='greenlet')


def test_immediate_mode_uses_memory_unless_told_otherwise(tmp_path):
    q = SqliteHuey('imm', filename=str(tmp_path / 'imm.db'))
    real = q.storage
    q.immediate = True
    assert q.storage is not real
    q.immediate = False
    assert q.storage is real
    kept = SqliteHuey('imm2', filename=str(tmp_path / 'imm2.db'), immediate_use_memory=False)
    real = kept.storage
    kept.immediate = True
    assert kept.storage is real
