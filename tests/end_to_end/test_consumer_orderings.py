"""The seed's "Signal Ordering" section, end to end through the real consumer:
a subprocess with 2 worker processes on Redis, observed by a local ``@q.signal``
handler in the app that appends one line per signal to a file."""
from __future__ import annotations

import os
import signal
import time


from queue_core import group

from scripts.support.polling import wait_until


E, X, C, ERR, RETRY, SCHED = 'enqueued', 'executing', 'complete', 'error', 'retrying', 'scheduled'


def wait_for(run, task_id, expected, timeout=20):
    wait_until(lambda: len(run.signals(task_id)) >= len(expected), timeout,
               message='%s to reach %s; got %s\n%s' % (task_id, expected,
                                                      run.signals(task_id), run.logs()))
    assert run.signals(task_id) == expected


def test_seed_orderings_hold_through_the_consumer(run):
    app = run.app
    consumer = run.consumer('-w', '2', '--lease', '2', '-s', '0.2')
    app.never_runs.revoke()
    success = app.add(1, 2)
    retry = app.fail_once('retry-now')
    retry_delayed = app.fail_once_delayed('retry-later')
    failure = app.always_fails()
    revoked = app.never_runs()
    chord = run.q.enqueue(group(app.add.s(1, 2), app.add.s(3, 4)).then(app.total))
    limited = [app.limited(), app.limited()]

    wait_for(run, success.id, [E, X, C])
    assert success.get(blocking=True, timeout=10) == 3
    wait_for(run, retry.id, [E, X, ERR, RETRY, E, X, C])
    wait_for(run, retry_delayed.id, [E, X, ERR, RETRY, SCHED, E, X, C])
    wait_for(run, failure.id, [E, X, ERR])
    wait_for(run, revoked.id, [E, 'revoked'])
    assert chord.get(blocking=True, timeout=10) == 10
    wait_for(run, chord.id, [E, X, C])
    members = [member.id for member in chord.results]
    for member_id in members:
        wait_for(run, member_id, [E, X, C])

    wait_until(lambda: sorted(len(run.signals(h.id)) for h in limited) == [3, 5], 20,
               message='rate-limited tasks to settle')
    sequences = sorted(run.signals(h.id) for h in limited)
    assert sequences == [[E, X, C], [E, X, 'rate-limited', RETRY, SCHED]]

    rows = run.rows()
    by_id = {}
    for row in rows:
        by_id.setdefault(row['id'], []).append(row)
    # Consumer-side re-enqueues come from the worker (retry) or the scheduler (due task).
    assert [r['source'] for r in by_id[retry.id] if r['signal'] == E] == ['app', 'worker']
    assert [r['source'] for r in by_id[retry_delayed.id] if r['signal'] == E] == [
        'app', 'scheduler']
    assert {r['pid'] for r in rows if r['source'] == 'worker'} - {os.getpid()}
    # The chord's callback is enqueued only after both members completed.
    order = [(r['id'], r['signal']) for r in rows]
    callback_enqueued = order.index((chord.id, E))
    completes = [order.index((member_id, C)) for member_id in members]
    assert max(completes) < callback_enqueued

    consumer.send_group(signal.SIGINT)  # to the whole group: graceful
    assert consumer.wait(20) == 0


def test_scheduled_task_is_scheduled_by_a_worker_then_enqueued_by_the_scheduler(run):
    """The seed's delayed call. A worker must see the task before its eta, whatever the
    machine's load: so the eta is an hour away, and once the task is on the schedule the
    test brings it forward, as an hour passing would."""
    consumer = run.consumer('-w', '2', '--lease', '2', '-s', '0.2')
    handle = run.app.add.schedule((2, 3), delay=3600)
    wait_for(run, handle.id, [E, SCHED])
    q = run.q
    (data,) = q.storage.read_schedule(time.time() + 7200)
    task = q.deserialize_task(data)
    task.eta = q.now()
    q.storage.add_to_schedule(q.serialize_task(task), time.time())
    wait_for(run, handle.id, [E, SCHED, E, X, C])
    assert handle.get(blocking=True, timeout=10) == 5
    sources = [r['source'] for r in run.rows() if r['id'] == handle.id]
    assert sources == ['app', 'worker', 'scheduler', 'worker', 'worker']
    consumer.send(signal.SIGINT)
    assert consumer.wait(20) == 0
