"""A Huey 3.5.4 application in the style of Huey's own examples (``examples/simple``):
tasks, a periodic task, a pipeline, a chord, a lock, retries and signal handlers.

Written for Huey; only the imports are renamed (``huey`` -> ``queue_core.huey``). The
Redis port comes from ``REDIS_PORT``, as a deployed Huey application would read it.
"""
import logging
import os

from queue_core.huey import RedisHuey, crontab
from queue_core.huey.exceptions import TaskLockedException
from queue_core.huey.signals import SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_LOCKED

logger = logging.getLogger('huey_example')

huey = RedisHuey('huey-example', host='127.0.0.1',
                 port=int(os.environ.get('REDIS_PORT', '6379')))


@huey.task()
def add(a, b):
    return a + b


@huey.task()
def total(numbers):
    return sum(numbers)


@huey.task(retries=1, retry_delay=1)
def flaky(key):
    # Fails the first time it sees ``key``, succeeds on the retry.
    if huey.put_if_empty('flaky-%s' % key, '1'):
        raise RuntimeError('first attempt of %s fails' % key)
    return 'recovered %s' % key


@huey.task(retries=1, retry_delay=1)
@huey.lock_task('reports')
def generate_report(name):
    return 'report %s' % name


@huey.task(context=True)
def whoami(task=None):
    return task.id


@huey.periodic_task(crontab(minute='*'))
def heartbeat():
    huey.put('heartbeat', 'beat')


@huey.signal(SIGNAL_COMPLETE)
def task_completed(signal, task):
    logger.info('%s completed', task.id)


@huey.signal(SIGNAL_ERROR, SIGNAL_LOCKED)
def task_not_done(signal, task, exc=None):
    logger.warning('%s: %s %s', signal, task.id, exc)


def report_now(name):
    """Run a report in this process unless one is running (the lock is shared)."""
    try:
        with huey.lock_task('reports'):
            return 'report %s' % name
    except TaskLockedException:
        return None
