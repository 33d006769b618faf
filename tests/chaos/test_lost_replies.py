"""Storage calls whose reply is lost: the server ran the command, the client timed out.

This is what a Redis stall does to a client when the stall lands between the command and
its reply (with ``appendfsync always`` the reply waits for the fsync, so the window is
real; the chaos campaign hits it). Here a loopback proxy between the queue and a real
Redis forwards every command and, while told to, drops the replies, so the case is
exact: on every connection (the call fails), or only on the connections open at the
time (a retry on a new connection would be answered). Whatever the call, no task may be
lost or doubled: it must be in the storage (schedule, queue or in-flight table) exactly
once, or have been handed on, or the caller must have been told the outcome is in doubt.
"""
from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator

import pytest

from queue_core import TaskQueue
from queue_core.exceptions import StorageError

from scripts.support.polling import wait_until


TIMEOUT = 0.5


class ReplyDropper:
    """A TCP proxy to ``port`` on loopback that can drop what the server answers: on
    every connection (``drop_replies``), or only on those open now (``drop_current()``),
    so that a client's retry on a new connection gets its answer."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.drop_replies = threading.Event()
        self._doomed: set[int] = set()
        self._live: set[int] = set()
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(('127.0.0.1', self.upstream))
            self._sockets += [client, server]
            self._live.add(id(server))
            threading.Thread(target=self._pump, args=(client, server, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True),
                             daemon=True).start()

    @contextlib.contextmanager
    def dropping_current(self) -> Iterator[None]:
        """Inside: drop the replies on the connections open now (not on new ones)."""
        self._doomed |= self._live
        try:
            yield
        finally:
            self._doomed.clear()

    def _pump(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                dropped = self.drop_replies.is_set() or id(source) in self._doomed
                if not (replies and dropped):
                    target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Close every socket."""
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def lossy(redis_server, redis_url):
    """A queue whose storage reaches the session's Redis through a ``ReplyDropper``."""
    proxy = ReplyDropper(redis_server.port)
    queue = TaskQueue('lost', storage='redis://127.0.0.1:%d/0?socket_timeout=%s'
                      % (proxy.port, TIMEOUT))

    @queue.task()
    def add(a, b):
        return a + b

    # Connect and load every script first, so that a dropped reply is that of the call
    # under test, not of a connection handshake or a script load.
    add(0, 0)
    queue.claim('warm-up', lease=1)
    queue.read_schedule()
    queue.storage.adopt('no-such-token', 'nobody', 'warm-up', 1.0)
    queue.flush()
    yield proxy, queue, add
    queue.close()
    proxy.close()


def reply_lost(proxy, call):
    """Run ``call`` with the replies dropped: it must fail with ``StorageError``."""
    proxy.drop_replies.set()
    try:
        with pytest.raises(StorageError):
            call()
    finally:
        proxy.drop_replies.clear()


def schedule_due(queue, add):
    """Put a task on the schedule and wait until it is due."""
    queue.add_schedule(add.s(1, 2, delay=0.01))
    wait_until(lambda: queue.now() > queue.scheduled()[0].eta, message='the task due')


def answered_by_retry(proxy, call):
    """Run ``call`` with the replies lost on the connections open now; a retry on a new
    connection would be answered. ``(value, raised)``: the storage may raise instead."""
    with proxy.dropping_current():
        try:
            return call(), False
        except StorageError:
            return None, True


def everywhere(queue):
    """Tasks anywhere in the queue's storage."""
    return queue.scheduled_count() + queue.pending_count() + len(queue.in_flight())


def test_an_enqueue_whose_reply_is_lost_failed_for_the_caller_but_the_task_is_there(lossy):
    proxy, queue, add = lossy
    reply_lost(proxy, lambda: add(1, 2))
    # At least once: the caller must treat the failure as "maybe enqueued".
    assert everywhere(queue) == 1


def test_a_claim_whose_reply_is_lost_leaves_the_task_in_flight_for_recovery(lossy):
    proxy, queue, add = lossy
    add(1, 2)
    reply_lost(proxy, lambda: queue.claim('worker-1', lease=30))
    assert queue.pending_count() == 0 and len(queue.in_flight()) == 1


def test_moving_due_tasks_with_the_reply_lost_loses_no_task(lossy):
    proxy, queue, add = lossy
    schedule_due(queue, add)
    reply_lost(proxy, lambda: queue.enqueue_due())
    assert everywhere(queue) == 1


def test_a_recovery_whose_reply_is_lost_loses_no_task(lossy):
    proxy, queue, add = lossy
    add(1, 2)
    _, token = queue.claim('worker-1', lease=30)
    record = [r for r in queue.storage.in_flight() if r.token == token][0]
    reply_lost(proxy, lambda: queue.recover(record, requeue=True))
    assert everywhere(queue) == 1


# A reply lost on one connection and the call retried on a new one, which answers: what
# the storage does by itself after a read timeout (storage/redis.py _run_script retries
# once on TimeoutError). The first command ran; the retry runs again.

def test_an_enqueue_with_its_reply_lost_is_on_the_queue_once(lossy):
    proxy, queue, add = lossy
    answered_by_retry(proxy, lambda: add(1, 2))
    assert everywhere(queue) == 1       # never twice: the task would run twice


def test_moving_due_tasks_with_a_reply_lost_hands_each_out_once(lossy):
    proxy, queue, add = lossy
    schedule_due(queue, add)
    answered_by_retry(proxy, lambda: queue.enqueue_due())
    if not queue.pending_count():       # the caller was told to try again: it may
        queue.enqueue_due()
    assert (queue.pending_count(), queue.scheduled_count()) == (1, 0)


def test_a_claim_with_its_reply_lost_is_handed_out_or_known_to_be_in_doubt(lossy):
    proxy, queue, add = lossy
    add(1, 2)
    claimed, raised = answered_by_retry(proxy, lambda: queue.claim('worker-1', lease=30))
    # A claim that raised leaves the worker suspecting orphans (it recovers its own
    # records); one that returned nothing must not have taken the task.
    assert claimed is not None or raised or queue.pending_count() == 1
