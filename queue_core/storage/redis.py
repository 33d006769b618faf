"""Redis storage: what production uses; several consumer hosts share one Redis.

Every read-modify-write step is one server-side Lua script (``redis_scripts``, registered
once, run by EVALSHA), so a claim pops the first message and records it in flight in one
round trip.
Idle workers block with BLPOP on a wake-up list that an enqueue pushes to when it finds
its priority's list empty (a claim that leaves messages behind adds a token when none is
waiting, so idle workers join a burst); a reader
waiting for a result registers in a per-key waiter count and blocks with BLPOP on a
per-key notify list, which ``put_data`` fills with one token per registered waiter.
The per-task calls (claim, store, release) go over a connection each thread keeps to
itself, skipping redis-py's per-command client machinery (about half the CPU of a call).

Key layout for queue ``<name>`` (all keys share the hash tag ``{<name>}``)::

    qc:{<name>}:q:<p>     LIST   the messages of priority <p>, oldest first
    qc:{<name>}:levels    ZSET   the priorities whose list may hold messages, score -<p>
    qc:{<name>}:seq       STRING counter giving schedule members their order
    qc:{<name>}:wake      LIST   wake-up tokens for BLPOP (trimmed to a few entries)
    qc:{<name>}:schedule  ZSET   score due time, member 8-byte seq + message
    qc:{<name>}:r:<key>   STRING a value of the key/value store (SET ... PX for a ttl)
    qc:{<name>}:results   ZSET   index of value keys, score expiry in ms (+inf: none)
    qc:{<name>}:c:<key>   STRING a counter (PEXPIRE set when it is created)
    qc:{<name>}:inflight  HASH   token -> owner + "\n" + message (owners hold no newline)
    qc:{<name>}:leases    ZSET   owner scored by lease end (seconds): one lease per
                                 owner, renewed in one step, covers each record it holds
    qc:{<name>}:w:<key>   STRING readers waiting for <key> (expires with their wait)
    qc:{<name>}:n:<key>   LIST   one token per waiting reader once <key> is written
"""
from __future__ import annotations

import functools
import itertools
import logging
import os
import select
import threading
import time
import weakref
from typing import Any, Callable, Sequence, TypeVar, cast
from urllib.parse import parse_qs, urlparse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..exceptions import ConfigurationError, StorageError
from . import redis_scripts as scripts
from .base import InFlight, Storage, new_tokens

logger = logging.getLogger('queue_core.storage')

WAKE_TOKENS = 16  # the wake-up list never holds more tokens than this
SOCKET_TIMEOUT = 10.0  # seconds; blocking reads are kept shorter than the socket timeout

_F = TypeVar('_F', bound=Callable[..., Any])

def _mapped(what: str) -> Callable[[_F], _F]:
    """Turn any Redis error raised by the decorated method into ``StorageError``."""
    def decorate(method: _F) -> _F:
        @functools.wraps(method)
        def wrapper(self: 'RedisStorage', *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except redis.RedisError as exc:
                raise StorageError('Redis storage at %s (queue %r) could not %s: %s: %s; '
                                   'check that the server is running and reachable'
                                   % (self.location, self.name, what,
                                      type(exc).__name__, exc)) from exc
        return wrapper  # type: ignore[return-value]
    return decorate


def _ms(ttl: float | None) -> str:
    """A ttl in whole milliseconds (at least 1), or '' for none."""
    return str(max(int(ttl * 1000), 1)) if ttl else ''


def _glob_escape(text: str) -> str:
    return ''.join('\\' + ch if ch in '*?[]\\' else ch for ch in text)


class RedisStorage(Storage):
    """A queue, schedule, key/value store, counters and in-flight table in Redis."""

    #: Seconds a single-call ``enqueue`` waits actively for Redis's reply before sleeping
    #: on the socket (0 turns it off). An idle machine is slow to wake a sleeping caller
    #: (on the 2-core test machine a loopback round trip took ~80 µs asleep, ~40 µs
    #: awake); looking at the socket, and yielding the CPU between looks, costs the caller
    #: at most this much CPU per call and nothing to other processes that need the CPU.
    #: A consumer turns it off for its own enqueues (retries, pipeline steps, due tasks),
    #: and claims and results never spin.
    enqueue_spin = 0.0002

    def __init__(self, client_factory: Callable[[], redis.Redis], name: str = 'queue',
                 location: str = 'redis', url: str | None = None) -> None:
        super().__init__(name)
        self.location = location
        self.url = url
        self._factory = client_factory
        self._client = client_factory()
        self._local = threading.local()
        # Weak, so a finished thread's connection goes (and closes) with its thread-local.
        self._conns: 'weakref.WeakSet[Any]' = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        prefix = 'qc:{%s}:' % name
        self._prefix = prefix
        self._levels, self._seq, self._wake = prefix + 'levels', prefix + 'seq', prefix + 'wake'
        self._schedule, self._results = prefix + 'schedule', prefix + 'results'
        self._in_flight_keys = [prefix + 'inflight', prefix + 'leases']
        # Registering only hashes the source; EVALSHA loads a script the server lacks.
        register = self._client.register_script
        self._enqueue, self._claim = register(scripts.ENQUEUE), register(scripts.CLAIM)
        self._add_schedule = register(scripts.SCHEDULE)
        self._read_schedule = register(scripts.READ_SCHEDULE)
        self._put, self._pop = register(scripts.PUT), register(scripts.POP_VALUE)
        self._queued, self._queue_size = register(scripts.QUEUED), register(scripts.QUEUE_SIZE)
        self._flush_queue = register(scripts.FLUSH_QUEUE)
        self._register = register(scripts.REGISTER)
        self._zero = prefix + 'q:0'  # the list of priority 0
        self._wait = register(scripts.WAIT)
        self._result_count = register(scripts.RESULT_COUNT)
        self._result_items = register(scripts.RESULT_ITEMS)
        self._incr, self._renew = register(scripts.INCR), register(scripts.RENEW)
        self._release = register(scripts.RELEASE)
        self._dequeue = register(scripts.DEQUEUE)
        self._list_in_flight = register(scripts.LIST_IN_FLIGHT)
        self._move_to_queue = register(scripts.MOVE_TO_QUEUE)
        self._adopt = register(scripts.ADOPT)
        self._requeue_in_flight = register(scripts.REQUEUE_IN_FLIGHT)

    @classmethod
    def from_url(cls, url: str, name: str = 'queue') -> 'RedisStorage':
        """Build from ``redis://[:password@]host:port/db``, ``rediss://…`` or
        ``unix:///path/to/socket?db=N``; redis-py's query options (e.g.
        ``socket_timeout``) apply."""
        def factory() -> redis.Redis:
            # Retry once at once on a dropped connection (e.g. after a server restart);
            # any further failure surfaces as StorageError without delay. Options in the
            # URL's query override these defaults.
            return redis.Redis.from_url(
                url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
        try:
            _check_db(url)
            factory()
        except (ValueError, TypeError) as exc:
            raise ConfigurationError('Redis URL %r is not valid (%s); use '
                                     'redis://host:port/db, rediss://host:port/db or '
                                     'unix:///path/to/socket' % (url, exc)) from exc
        scheme, rest = url.split('://', 1)
        location = scheme + '://' + rest.rsplit('@', 1)[-1]  # never show a password
        return cls(factory, name, location=location, url=url)

    def __reduce__(self) -> tuple:
        """Pickle as the URL (e.g. for a spawned process), never as connections."""
        if self.url is None:
            raise TypeError('only a RedisStorage built by from_url can be pickled')
        return (type(self).from_url, (self.url, self.name))

    # -- connections -------------------------------------------------------------
    def reset_after_fork(self) -> None:
        """Build a fresh client so the child never shares the parent's sockets."""
        self._client = self._factory()
        self._local = threading.local()
        self._conns = weakref.WeakSet()  # the parent's connections are its own to close

    def _run_script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA ``script`` over this thread's own connection (see ``_call``); an
        unknown script is loaded and run."""
        return self._call(_pack_command(('EVALSHA', script.sha, len(keys), *keys, *args)),
                          script)

    def _call(self, command: bytes, script: Any = None, spin: float = 0.0) -> Any:
        """Send one packed command over this thread's own connection (made lazily, remade
        in a forked child). A connection found dead before sending is replaced. A failure
        after the command was sent is never retried: the server may have run it (a lost
        reply), so the caller gets ``StorageError`` rather than a second, silent
        execution. With ``spin`` the reply is first waited for actively (``_await_reply``)."""
        conn = self._thread_connection()
        try:
            if conn._sock is not None and conn.can_read():
                conn.disconnect()  # the server closed it (e.g. a restart): start afresh
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()
        try:
            conn.send_packed_command([command])
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()
            conn.send_packed_command([command])  # nothing reached the server: safe to resend
        if spin:
            _await_reply(conn, spin)
        try:
            return conn.read_response()
        except redis.exceptions.NoScriptError:  # not run: load it, then run it
            conn.send_command('SCRIPT', 'LOAD', script.script)
            conn.read_response()
            conn.send_packed_command([command])
            return conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()
            raise

    def _thread_connection(self) -> Any:
        conn = getattr(self._local, 'conn', None)
        if conn is None or getattr(self._local, 'pid', None) != os.getpid():
            pool = self._client.connection_pool
            conn = self._local.conn = pool.connection_class(**pool.connection_kwargs)
            self._local.pid = os.getpid()
            with self._conns_lock:
                self._conns.add(conn)
        return conn

    def close(self) -> None:
        """Disconnect every pooled and per-thread connection; the next call reconnects."""
        self._client.connection_pool.disconnect()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            conn.disconnect()

    def _blocking_cap(self, timeout: float) -> float:
        """Keep blocking commands shorter than the socket timeout, so they never time out."""
        socket_timeout = self._client.connection_pool.connection_kwargs.get('socket_timeout')
        if socket_timeout:
            timeout = min(timeout, max(socket_timeout - 0.5, socket_timeout / 2))
        return max(timeout, 0.001)

    def _delete_matching(self, pattern: str) -> None:
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=_glob_escape(self._prefix) + pattern,
                                          count=500):
            batch.append(key)
            if len(batch) >= 500:
                self._client.delete(*batch)
                batch = []
        if batch:
            self._client.delete(*batch)

    # -- queue -----------------------------------------------------------------
    @_mapped('enqueue a message')
    def enqueue(self, data: bytes, priority: int = 0) -> None:
        if priority:  # other levels are indexed in the same step, by the script
            self.enqueue_many([(data, priority)])
            return
        # Priority 0: one plain RPUSH, as cheap as Huey's LPUSH. Claims read this list
        # even before its level is indexed, so the message is queued once this returns.
        if self._call(_pack_command(('RPUSH', self._zero, data)),
                      spin=self.enqueue_spin) == 1:
            try:  # the list was empty: index the level, wake a worker
                self._run_script(self._register, [self._levels, self._wake], [WAKE_TOKENS])
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Queued all the same; idle workers find it within their poll interval.
                logger.warning('Redis storage at %s (queue %r): enqueued, but could not '
                               'wake a worker: %s', self.location, self.name, exc)

    @_mapped('enqueue messages')
    def enqueue_many(self, items: Sequence[tuple[bytes, int]]) -> None:
        # Runs of one priority (a map's whole batch, usually): [priority, count, *messages].
        args: list[Any] = [self._prefix, WAKE_TOKENS]
        for priority, run in itertools.groupby(items, key=_priority_of):
            messages = [data for data, _ in run]
            args += [priority, len(messages), *messages]
        if items:
            self._run_script(self._enqueue, [self._levels, self._wake], args)

    @_mapped('dequeue a message')
    def dequeue(self) -> bytes | None:
        # A script, so that it is never sent twice after a lost reply (see _run_script).
        return self._run_script(self._dequeue, [self._levels], [self._prefix])

    @_mapped('claim messages')
    def claim_many(self, owner: str, lease_until: float, limit: int,
                   release: Sequence[str] = (), counter: str | None = None
                   ) -> list[InFlight]:
        limit = max(int(limit), 0)
        tokens = new_tokens(limit)
        counter_key = self._counter_key(counter) if counter is not None else ''
        reply = self._run_script(
            self._claim, [self._levels] + self._in_flight_keys + [self._wake, counter_key],
            [self._prefix, owner, repr(float(lease_until)), limit, len(release), *release,
             *tokens])
        if not reply:
            return []
        value = None if reply[-1] is None else int(reply[-1])
        return [InFlight(token, owner, lease_until, data, value)
                for token, data in zip(tokens, reply[:-1])]

    def _counter_key(self, key: str) -> str:
        return self._prefix + 'c:' + key

    @_mapped('wait for work')
    def wait_for_work(self, timeout: float) -> None:
        if timeout > 0:
            self._blpop(self._wake, timeout)

    @_mapped('count messages')
    def queue_size(self) -> int:
        return int(self._run_script(self._queue_size, [self._levels], [self._prefix]))

    @_mapped('list messages')
    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        if limit is not None and limit <= 0:
            return []
        return self._run_script(self._queued, [self._levels],
                                [self._prefix, -1 if limit is None else int(limit)])

    @_mapped('flush the queue')
    def flush_queue(self) -> None:
        self._run_script(self._flush_queue, [self._levels, self._wake], [self._prefix])

    # -- schedule --------------------------------------------------------------
    @_mapped('schedule a message')
    def add_to_schedule(self, data: bytes, ts: float) -> None:
        self._run_script(self._add_schedule, [self._schedule, self._seq],
                         [repr(float(ts)), data])

    @_mapped('read the schedule')
    def read_schedule(self, ts: float) -> list[bytes]:
        due = self._run_script(self._read_schedule, [self._schedule], [repr(float(ts))])
        return [m[8:] for m in due]

    @_mapped('read the due messages')
    def due_items(self, ts: float, limit: int = 1000) -> list[tuple[bytes, bytes]]:
        # redis-py types replies as str/bytes unions; this client does not decode: bytes.
        members = cast('list[bytes]', self._client.zrangebyscore(
            self._schedule, '-inf', repr(float(ts)), start=0, num=limit))
        return [(member, member[8:]) for member in members]

    @_mapped('move a due message to the queue')
    def move_to_queue(self, ref: bytes, data: bytes | None, priority: int = 0) -> bool:
        return bool(self._run_script(
            self._move_to_queue, [self._schedule, self._levels, self._wake],
            [ref, b'' if data is None else data, int(priority or 0), WAKE_TOKENS,
             self._prefix]))

    @_mapped('list the schedule')
    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        return _strip(self._client, self._schedule, limit)

    @_mapped('count the schedule')
    def schedule_size(self) -> int:
        return self._client.zcard(self._schedule)

    @_mapped('flush the schedule')
    def flush_schedule(self) -> None:
        self._client.delete(self._schedule)

    # -- key/value ---------------------------------------------------------------
    def _value_key(self, key: str) -> str:
        return self._prefix + 'r:' + key

    def _store(self, key: str, value: bytes, ttl: float | None, only_if_empty: bool) -> bool:
        return bool(self._run_script(self._put, [self._value_key(key), self._results,
                                                 self._prefix + 'w:' + key,
                                                 self._prefix + 'n:' + key],
                                     [key, value, _ms(ttl), '1' if only_if_empty else '']))

    @_mapped('store a value')
    def put_data(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._store(key, value, ttl, False)

    @_mapped('store a value if absent')
    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return self._store(key, value, ttl, True)

    @_mapped('read a value')
    def peek_data(self, key: str) -> bytes | None:
        # redis-py types replies as str/bytes unions; this client does not decode: bytes.
        return cast('bytes | None', self._client.get(self._value_key(key)))

    @_mapped('read values')
    def peek_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        # redis-py types replies as str/bytes unions; this client does not decode: bytes.
        return cast('list[bytes | None]', self._client.mget([self._value_key(key) for key in keys]))

    @_mapped('pop a value')
    def pop_data(self, key: str) -> bytes | None:
        return self._run_script(self._pop, [self._value_key(key), self._results], [key])

    @_mapped('delete a value')
    def delete_data(self, key: str) -> bool:
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._value_key(key))
        pipe.zrem(self._results, key)
        return pipe.execute()[0] > 0

    @_mapped('check a key')
    def has_data_for_key(self, key: str) -> bool:
        return self._client.exists(self._value_key(key)) > 0

    @_mapped('wait for a value')
    def wait_for_data(self, key: str, timeout: float) -> bool:
        # Register as a waiter (unless the value is already there), then block on this
        # key's notify list, which PUT fills with one token per registered waiter.
        if self._run_script(self._wait, [self._value_key(key), self._prefix + 'w:' + key],
                            [int(timeout * 1000) + 1000]):
            return True
        if self._blpop(self._prefix + 'n:' + key, timeout):
            return True
        return self._client.exists(self._value_key(key)) > 0

    def _blpop(self, key: str, timeout: float) -> bool:
        """BLPOP one token; a socket timeout (the server's own timeout is coarse, about
        100 ms) counts as an early return, which every waiter allows."""
        try:
            return bool(self._client.blpop([key], timeout=self._blocking_cap(timeout)))
        except redis.TimeoutError:
            return False

    @_mapped('count values')
    def result_store_size(self) -> int:
        return int(self._run_script(self._result_count, [self._results], []))

    @_mapped('list values')
    def result_items(self) -> dict[str, bytes]:
        flat = self._run_script(self._result_items, [self._results], [self._value_key('')])
        return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}

    @_mapped('flush values')
    def flush_results(self) -> None:
        for pattern in ('r:*', 'w:*', 'n:*'):
            self._delete_matching(pattern)
        self._client.delete(self._results)

    @_mapped('increment a counter')
    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return int(self._run_script(self._incr, [self._counter_key(key)], [amount, _ms(ttl)]))

    @_mapped('flush counters')
    def flush_counters(self) -> None:
        self._delete_matching('c:*')

    # -- in-flight ---------------------------------------------------------------
    @_mapped('release an in-flight record')
    def release(self, token: str) -> bool:
        return bool(self._run_script(self._release, self._in_flight_keys[:1], [token]))

    @_mapped('renew leases')
    def renew(self, owner: str, lease_until: float) -> int:
        return int(self._run_script(self._renew, self._in_flight_keys,
                                    [owner, repr(float(lease_until))]))

    def _records(self) -> list[InFlight]:
        flat = self._run_script(self._list_in_flight, self._in_flight_keys,
                                [repr(time.time())])
        return [InFlight(flat[i].decode(), flat[i + 1].decode(), float(flat[i + 2]),
                         flat[i + 3]) for i in range(0, len(flat), 4)]

    @_mapped('list in-flight records')
    def in_flight(self) -> list[InFlight]:
        return self._records()

    @_mapped('adopt an in-flight record')
    def adopt(self, token: str, expected_owner: str, owner: str,
              lease_until: float) -> InFlight | None:
        found = self._run_script(self._adopt, self._in_flight_keys,
                                 [token, expected_owner, owner, repr(float(lease_until))])
        if found is None:
            return None
        return InFlight(token, owner, lease_until, found)

    @_mapped('requeue an in-flight record')
    def requeue_in_flight(self, token: str, data: bytes, priority: int = 0,
                          head: bool = False) -> bool:
        return bool(self._run_script(
            self._requeue_in_flight, [self._in_flight_keys[0], self._levels, self._wake],
            [token, data, int(priority or 0), WAKE_TOKENS, self._prefix,
             '1' if head else '']))

    @_mapped('flush in-flight records')
    def flush_in_flight(self) -> None:
        self._client.delete(*self._in_flight_keys)

    @_mapped('flush everything')
    def flush_all(self) -> None:
        self._delete_matching('*')


def _await_reply(conn: Any, spin: float) -> None:
    """Look at ``conn``'s socket until the reply is readable or ``spin`` seconds pass,
    yielding the CPU between looks (``read_response`` then reads it, or sleeps)."""
    sock = getattr(conn, '_sock', None)
    if sock is None:
        return
    ready, clock = select.select, time.perf_counter
    deadline = clock() + spin
    while not ready([sock], (), (), 0)[0]:
        if clock() >= deadline:
            return
        os.sched_yield()


def _priority_of(item: tuple[bytes, int]) -> int:
    return int(item[1] or 0)


def _pack_command(args: Sequence[Any]) -> bytes:
    """One command in the Redis protocol. redis-py's packer checks and encodes each
    argument through several calls; for the script calls, whose arguments are only
    ``str``, ``bytes``, ``int`` and ``float``, this is a third of a call's client CPU."""
    parts = [b'*%d\r\n' % len(args)]
    for arg in args:
        if type(arg) is bytes:  # most arguments of a batch: messages
            pass
        elif isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b'%d' % arg
        elif isinstance(arg, float):
            arg = repr(arg).encode()
        parts.append(b'$%d\r\n%s\r\n' % (len(arg), arg))
    return b''.join(parts)


def _check_db(url: str) -> None:
    """Reject a database number that is not a number (redis-py would ignore it)."""
    parsed = urlparse(url)
    db = parse_qs(parsed.query).get('db', [''])[0]
    if parsed.scheme != 'unix':
        db = parsed.path.lstrip('/') or db
    if db and not db.isdigit():
        raise ValueError('database %r is not a number' % (db,))


def _strip(client: redis.Redis, key: str, limit: int | None) -> list[bytes]:
    """The first ``limit`` (default: all) members of the schedule ZSET, without their
    8-byte sequence prefix."""
    if limit is not None and limit <= 0:
        return []
    # redis-py types replies as str/bytes unions; this client does not decode: bytes.
    members = cast('list[bytes]', client.zrange(key, 0, -1 if limit is None else int(limit) - 1))
    return [m[8:] for m in members]
