"""A worker process killed with SIGKILL while it holds prefetched tasks (SPEC §5
"Prefetch"): the task it was running is reported INTERRUPTED, the tasks it finished are
dropped without a word, and those it never started go back to the head of the queue in
order, byte for byte (no signal, no tseq change) — whether its supervisor recovers them at
once or a later consumer finds them by their lapsed lease."""
from __future__ import annotations

import os
import signal
import time

import pytest

from queue_core import TaskQueue
from queue_core.consumer import ConsumerConfig
from queue_core.consumer.owner import make_owner
from queue_core.consumer.progress import progress_path
from queue_core.consumer.recovery import recover_owners, sweep_abandoned
from queue_core.consumer.worker import Worker
from queue_core.storage import storage_from_url

from scripts.support.polling import wait_until


RUNNING_KEY = 'victim-is-running'


def build_queue(url: str):
    q = TaskQueue('prefetch-kill', storage=storage_from_url(url, 'prefetch-kill'))

    @q.task()
    def quick(n):
        return n

    @q.task()
    def victim():
        q.storage.put_data(RUNNING_KEY, b'1')
        time.sleep(120)  # runs until the test kills the process

    return q, quick, victim


def fork_worker(q: TaskQueue, config: ConsumerConfig) -> tuple[int, str]:
    """A real worker process (forked, as the consumer does); its pid and owner id."""
    pid = os.fork()
    if pid == 0:  # the child: run the worker until killed
        try:
            q.storage.reset_after_fork()
            Worker(q, config, make_owner(os.getpid(), 'prefetch')).run()
        finally:
            os._exit(0)
    return pid, make_owner(pid, 'prefetch')


@pytest.mark.parametrize('found_by', ['supervisor', 'sweep'])
def test_sigkill_with_prefetched_tasks_in_hand(redis_url, found_by):
    q, quick, victim = build_queue(redis_url)
    seen = []
    q.signal()(lambda sig, task, *extra: seen.append((sig, task.id)))
    first = [quick(n) for n in range(2)]
    stuck = victim()
    behind = [quick(n) for n in range(10, 13)]
    originals = q.storage.enqueued_items()[3:]  # the messages of the three behind
    # One claim takes all six; held far longer than the test runs, so none is handed
    # back before the kill.
    config = ConsumerConfig(prefetch=6, prefetch_hold=300.0, lease=2.0, poll_interval=0.05)
    pid, owner = fork_worker(q, config)
    killed = False
    try:
        wait_until(lambda: q.storage.has_data_for_key(RUNNING_KEY), 20,
                   message='the victim task to start in the worker')
        assert q.pending_count() == 0 and len(q.in_flight()) >= 4
        later = quick(99)  # enqueued after the claim: must stay behind the handed back
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        killed = True
    finally:
        if not killed:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert os.path.exists(progress_path(owner))
    seen.clear()
    if found_by == 'supervisor':
        recover_owners(q, [owner])
    else:  # a later consumer: the lease lapses, and the owner's process is gone
        wait_until(lambda: [rec for rec in q.storage.in_flight()
                            if rec.lease_until < time.time()], 10,
                   message='the lease to lapse')
        sweep_abandoned(q, live_owners=())
    assert seen == [('interrupted', stuck.id)]  # nothing for finished or unstarted tasks
    assert [h.get() for h in first] == [0, 1]
    assert q.storage.enqueued_items() == originals + [q.storage.enqueued_items()[-1]]
    assert [t.id for t in q.pending()] == [h.id for h in behind] + [later.id]
    assert q.in_flight() == []
    assert not os.path.exists(progress_path(owner))
