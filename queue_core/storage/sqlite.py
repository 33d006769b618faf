"""SQLite storage: one file that several processes on one host share safely.

Every process (and every thread in it) has its own connection, opened lazily and rebuilt
after ``fork``. The file runs in WAL mode with a busy timeout, and each read-modify-write
operation runs in a ``BEGIN IMMEDIATE`` transaction, so that of several workers claiming
at once each message goes to exactly one. Several queues may share one file: every table
name carries the queue name.

Values with a ttl keep their expiry time and are treated as absent once it has passed
(expired rows are purged now and then). SQLite cannot notify other processes, so
``wait_for_work`` and ``wait_for_data`` poll, starting at 1 ms and backing off to 50 ms.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from typing import Callable, Iterator, Sequence
from urllib.parse import parse_qs

from ..exceptions import ConfigurationError, StorageError
from .base import InFlight, Storage, new_tokens

_SYNCHRONOUS = ('OFF', 'NORMAL', 'FULL', 'EXTRA')
_PURGE_EVERY = 256  # put_data calls between purges of expired values

_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS {queue} (id INTEGER PRIMARY KEY, priority INTEGER NOT NULL,'
    ' data BLOB NOT NULL)',
    'CREATE INDEX IF NOT EXISTS {queue_order} ON {queue} (priority DESC, id)',
    'CREATE TABLE IF NOT EXISTS {schedule} (id INTEGER PRIMARY KEY, ts REAL NOT NULL,'
    ' data BLOB NOT NULL)',
    'CREATE INDEX IF NOT EXISTS {schedule_order} ON {schedule} (ts, id)',
    'CREATE TABLE IF NOT EXISTS {kv} (key TEXT PRIMARY KEY, value BLOB NOT NULL,'
    ' expires REAL)',
    'CREATE INDEX IF NOT EXISTS {kv_expiry} ON {kv} (expires) WHERE expires IS NOT NULL',
    'CREATE TABLE IF NOT EXISTS {counters} (key TEXT PRIMARY KEY, value INTEGER NOT NULL,'
    ' expires REAL)',
    'CREATE TABLE IF NOT EXISTS {in_flight} (token TEXT PRIMARY KEY, owner TEXT NOT NULL,'
    ' lease_until REAL NOT NULL, data BLOB NOT NULL)',
    'CREATE INDEX IF NOT EXISTS {in_flight_owner} ON {in_flight} (owner)',
    'CREATE INDEX IF NOT EXISTS {in_flight_lease} ON {in_flight} (lease_until)',
)
_TABLES = ('queue', 'schedule', 'kv', 'counters', 'in_flight')
_INDEXES = ('queue_order', 'schedule_order', 'kv_expiry', 'in_flight_owner', 'in_flight_lease')
_LIVE = '(expires IS NULL OR expires > ?)'


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced, so a finished thread's one is freed."""


def _identifiers(name: str) -> dict[str, str]:
    """Quoted table and index names for queue ``name`` (``"qc:<name>:<part>"``)."""
    return {part: '"%s"' % ('qc:%s:%s' % (name, part)).replace('"', '""')
            for part in _TABLES + _INDEXES}


def poll_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Call ``predicate`` until it is true or ``timeout`` seconds passed; return its last value.

    Sleeps 1 ms after the first miss and doubles up to 50 ms, never past the deadline.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    delay = 0.001
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


def path_from_url(url: str) -> str:
    """The file a ``sqlite://`` URL names, made absolute against the current directory."""
    rest = url.split('://', 1)[1].split('?', 1)[0]
    if not rest.startswith('/') or len(rest) < 2:
        raise ConfigurationError(
            'SQLite URL %r names no file; use sqlite:///relative/path.db or '
            'sqlite:////absolute/path.db' % (url,))
    path = rest[1:]
    if path == ':memory:':
        raise ConfigurationError('SQLite URL %r names an in-memory database, which '
                                 'processes cannot share; use memory:// instead' % (url,))
    path = os.path.abspath(path)
    if not os.path.isdir(os.path.dirname(path)):
        raise ConfigurationError('SQLite URL %r: directory %r does not exist; create it '
                                 'first' % (url, os.path.dirname(path)))
    return path


class SqliteStorage(Storage):
    """A queue, schedule, key/value store, counters and in-flight table in one SQLite file."""

    def __init__(self, path: str, name: str = 'queue', timeout: float = 30.0,
                 synchronous: str = 'NORMAL') -> None:
        super().__init__(name)
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ConfigurationError('SQLite synchronous=%r is not one of %s'
                                     % (synchronous, ', '.join(_SYNCHRONOUS)))
        self.path = path
        self.timeout = timeout
        self.synchronous = synchronous.upper()
        self._t = _identifiers(name)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._generation = 0
        self._pid = os.getpid()
        # Weak, so that a connection is closed once the thread that used it is gone.
        self._opened: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._inherited: list[sqlite3.Connection] = []
        self._schema_ready = False
        self._puts = 0

    @classmethod
    def from_url(cls, url: str, name: str = 'queue') -> 'SqliteStorage':
        """Build from ``sqlite:///rel.db`` or ``sqlite:////abs/path.db``.

        Query options: ``timeout`` (busy timeout in seconds, default 30) and
        ``synchronous`` (off, normal (default), full, extra).
        """
        path = path_from_url(url)
        options = parse_qs(url.split('?', 1)[1]) if '?' in url else {}
        try:
            timeout = float(options.get('timeout', ['30'])[0])
        except ValueError:
            raise ConfigurationError('SQLite URL %r: timeout must be a number of seconds'
                                     % (url,)) from None
        return cls(path, name, timeout=timeout,
                   synchronous=options.get('synchronous', ['normal'])[0])

    def __reduce__(self) -> tuple:
        """Pickle as configuration (e.g. for a spawned process), never as connections."""
        return (type(self), (self.path, self.name, self.timeout, self.synchronous))

    # -- connections -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use and again after fork or close."""
        local = self._local
        conn = getattr(local, 'conn', None)
        if conn is not None and local.generation == self._generation \
                and self._pid == os.getpid():
            return conn
        if self._pid != os.getpid():
            self.reset_after_fork()
        conn = self._connect()
        self._local.conn, self._local.generation = conn, self._generation
        return conn

    def _connect(self) -> sqlite3.Connection:
        with self._errors('open the database'):
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False, factory=_Connection)
            self._enable_wal(conn)
            conn.execute('PRAGMA synchronous=%s' % self.synchronous)
        with self._lock:
            self._opened.add(conn)
        if not self._schema_ready:
            with self._write('create its tables', conn) as cur:
                for statement in _SCHEMA:
                    cur.execute(statement.format(**self._t))
            self._schema_ready = True
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL takes an exclusive lock and ignores the busy
        # timeout, so processes opening a fresh file together retry here.
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                conn.execute('PRAGMA journal_mode=WAL')
                return
            except sqlite3.OperationalError as exc:
                if 'locked' not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def reset_after_fork(self) -> None:
        """Forget the parent's connections; this process opens its own on next use."""
        with self._lock:
            # Closing a connection inherited across fork is unsafe for SQLite: keep the
            # objects alive (so they are never finalized here) and never use them.
            self._inherited.extend(self._opened)
            self._opened = weakref.WeakSet()
            self._local = threading.local()
            self._pid = os.getpid()

    def close(self) -> None:
        """Close every connection this process opened; later calls reconnect."""
        with self._lock:
            opened, self._opened = list(self._opened), weakref.WeakSet()
            self._generation += 1
        for conn in opened:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # -- statement helpers -------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError('SQLite storage %r (queue %r) could not %s: %s; check that '
                               'the file is writable and its disk is not full'
                               % (self.path, self.name, what, exc)) from exc

    @contextlib.contextmanager
    def _write(self, what: str, conn: sqlite3.Connection | None = None
               ) -> Iterator[sqlite3.Cursor]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        conn = conn or self._conn()
        with self._errors(what):
            cur = conn.execute('BEGIN IMMEDIATE')
            try:
                yield cur
            except BaseException:
                if conn.in_transaction:
                    conn.execute('ROLLBACK')
                raise
            conn.execute('COMMIT')

    def _run(self, what: str, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        """Run one statement (autocommit) with this queue's table names filled in."""
        with self._errors(what):
            return self._conn().execute(sql.format(**self._t), params)

    def _rows(self, what: str, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self._errors(what):
            return self._conn().execute(sql.format(**self._t), params).fetchall()

    def _scalar(self, what: str, sql: str, params: Sequence[object] = ()) -> int:
        """The one integer a ``COUNT`` or ``EXISTS`` query answers."""
        return int(self._rows(what, sql, params)[0][0])

    # -- queue -----------------------------------------------------------------
    def enqueue(self, data: bytes, priority: int = 0) -> None:
        self._run('enqueue a message', 'INSERT INTO {queue} (priority, data) VALUES (?, ?)',
                  (priority or 0, data))

    def enqueue_many(self, items: Sequence[tuple[bytes, int]]) -> None:
        with self._write('enqueue messages') as cur:
            cur.executemany('INSERT INTO {queue} (priority, data) VALUES (?, ?)'
                            .format(**self._t), [(p or 0, d) for d, p in items])

    def _pop(self, cur: sqlite3.Cursor, limit: int) -> list[bytes]:
        rows = cur.execute('SELECT id, data FROM {queue} ORDER BY priority DESC, id LIMIT ?'
                           .format(**self._t), (limit,)).fetchall()
        if rows:
            cur.executemany('DELETE FROM {queue} WHERE id = ?'.format(**self._t),
                            [(row[0],) for row in rows])
        return [row[1] for row in rows]

    def dequeue(self) -> bytes | None:
        with self._write('dequeue a message') as cur:
            popped = self._pop(cur, 1)
        return popped[0] if popped else None

    def claim_many(self, owner: str, lease_until: float, limit: int,
                   release: Sequence[str] = (), counter: str | None = None
                   ) -> list[InFlight]:
        with self._write('claim messages') as cur:
            if release:
                cur.executemany('DELETE FROM {in_flight} WHERE token = ?'.format(**self._t),
                                [(token,) for token in release])
            taken = self._pop(cur, max(limit, 0))
            if not taken:
                return []
            value = None
            if counter is not None:
                row = cur.execute(('SELECT value FROM {counters} WHERE key = ? AND '
                                   + _LIVE).format(**self._t), (counter, time.time())).fetchone()
                value = int(row[0]) if row else 0
            records = [InFlight(token, owner, lease_until, data, value)
                       for token, data in zip(new_tokens(len(taken)), taken)]
            cur.executemany('INSERT INTO {in_flight} (token, owner, lease_until, data) '
                            'VALUES (?, ?, ?, ?)'.format(**self._t),
                            [(r.token, owner, lease_until, r.data) for r in records])
            return records

    def wait_for_work(self, timeout: float) -> None:
        poll_until(lambda: bool(self._scalar('check for messages',
                                             'SELECT EXISTS (SELECT 1 FROM {queue})')),
                   timeout)

    def queue_size(self) -> int:
        return self._scalar('count messages', 'SELECT COUNT(*) FROM {queue}')

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        rows = self._rows('list messages', 'SELECT data FROM {queue} '
                          'ORDER BY priority DESC, id LIMIT ?', (_limit(limit),))
        return [row[0] for row in rows]

    def flush_queue(self) -> None:
        self._run('flush the queue', 'DELETE FROM {queue}')

    # -- schedule --------------------------------------------------------------
    def add_to_schedule(self, data: bytes, ts: float) -> None:
        self._run('schedule a message', 'INSERT INTO {schedule} (ts, data) VALUES (?, ?)',
                  (ts, data))

    def read_schedule(self, ts: float) -> list[bytes]:
        with self._write('read the schedule') as cur:
            rows = cur.execute('SELECT data FROM {schedule} WHERE ts <= ? ORDER BY ts, id'
                               .format(**self._t), (ts,)).fetchall()
            if rows:
                cur.execute('DELETE FROM {schedule} WHERE ts <= ?'.format(**self._t), (ts,))
        return [row[0] for row in rows]

    def due_items(self, ts: float, limit: int = 1000) -> list[tuple[bytes, bytes]]:
        rows = self._rows('read the schedule', 'SELECT id, data FROM {schedule} WHERE ts <= ? '
                          'ORDER BY ts, id LIMIT ?', (ts, limit))
        return [(str(row[0]).encode(), row[1]) for row in rows]

    def move_to_queue(self, ref: bytes, data: bytes | None, priority: int = 0) -> bool:
        with self._write('move a due message to the queue') as cur:
            cur.execute('DELETE FROM {schedule} WHERE id = ?'.format(**self._t), (int(ref),))
            if cur.rowcount != 1:
                return False
            if data is not None:
                cur.execute('INSERT INTO {queue} (priority, data) VALUES (?, ?)'
                            .format(**self._t), (priority or 0, data))
            return True

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        rows = self._rows('list the schedule', 'SELECT data FROM {schedule} '
                          'ORDER BY ts, id LIMIT ?', (_limit(limit),))
        return [row[0] for row in rows]

    def schedule_size(self) -> int:
        return self._scalar('count the schedule', 'SELECT COUNT(*) FROM {schedule}')

    def flush_schedule(self) -> None:
        self._run('flush the schedule', 'DELETE FROM {schedule}')

    # -- key/value ---------------------------------------------------------------
    def put_data(self, key: str, value: bytes, ttl: float | None = None) -> None:
        now = time.time()
        self._run('store a value', 'INSERT OR REPLACE INTO {kv} (key, value, expires) '
                  'VALUES (?, ?, ?)', (key, value, now + ttl if ttl else None))
        self._puts += 1
        if self._puts % _PURGE_EVERY == 0:
            self._run('purge expired values', 'DELETE FROM {kv} WHERE expires <= ?', (now,))

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        now = time.time()
        with self._write('store a value if absent') as cur:
            cur.execute('DELETE FROM {kv} WHERE key = ? AND expires <= ?'.format(**self._t),
                        (key, now))
            cur.execute('INSERT OR IGNORE INTO {kv} (key, value, expires) VALUES (?, ?, ?)'
                        .format(**self._t), (key, value, now + ttl if ttl else None))
            return cur.rowcount == 1

    def peek_data(self, key: str) -> bytes | None:
        rows = self._rows('read a value', 'SELECT value FROM {kv} WHERE key = ? AND ' + _LIVE,
                          (key, time.time()))
        return rows[0][0] if rows else None

    def _take(self, key: str, what: str) -> bytes | None:
        with self._write(what) as cur:
            row = cur.execute(('SELECT value FROM {kv} WHERE key = ? AND ' + _LIVE)
                              .format(**self._t), (key, time.time())).fetchone()
            cur.execute('DELETE FROM {kv} WHERE key = ?'.format(**self._t), (key,))
        return row[0] if row else None

    def pop_data(self, key: str) -> bytes | None:
        return self._take(key, 'pop a value')

    def delete_data(self, key: str) -> bool:
        return self._take(key, 'delete a value') is not None

    def has_data_for_key(self, key: str) -> bool:
        return bool(self._scalar('check a key', 'SELECT EXISTS (SELECT 1 FROM {kv} '
                                 'WHERE key = ? AND ' + _LIVE + ')', (key, time.time())))

    def wait_for_data(self, key: str, timeout: float) -> bool:
        return poll_until(lambda: self.has_data_for_key(key), timeout)

    def result_store_size(self) -> int:
        return self._scalar('count values', 'SELECT COUNT(*) FROM {kv} WHERE ' + _LIVE,
                            (time.time(),))

    def result_items(self) -> dict[str, bytes]:
        return dict(self._rows('list values', 'SELECT key, value FROM {kv} WHERE ' + _LIVE,
                               (time.time(),)))

    def flush_results(self) -> None:
        self._run('flush values', 'DELETE FROM {kv}')

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        now = time.time()
        with self._write('increment a counter') as cur:
            row = cur.execute(('SELECT value, expires FROM {counters} WHERE key = ? AND '
                               + _LIVE).format(**self._t), (key, now)).fetchone()
            value, expires = row if row else (0, now + ttl if ttl else None)
            cur.execute('INSERT OR REPLACE INTO {counters} (key, value, expires) '
                        'VALUES (?, ?, ?)'.format(**self._t), (key, value + amount, expires))
        return value + amount

    def flush_counters(self) -> None:
        self._run('flush counters', 'DELETE FROM {counters}')

    # -- in-flight ---------------------------------------------------------------
    def release(self, token: str) -> bool:
        return self._run('release an in-flight record',
                         'DELETE FROM {in_flight} WHERE token = ?', (token,)).rowcount > 0

    def renew(self, owner: str, lease_until: float) -> int:
        return self._run('renew leases', 'UPDATE {in_flight} SET lease_until = ? '
                         'WHERE owner = ?', (lease_until, owner)).rowcount

    def in_flight(self) -> list[InFlight]:
        return [InFlight(*row) for row in self._rows(
            'list in-flight records',
            'SELECT token, owner, lease_until, data FROM {in_flight} ORDER BY lease_until')]

    def adopt(self, token: str, expected_owner: str, owner: str,
              lease_until: float) -> InFlight | None:
        with self._write('adopt an in-flight record') as cur:
            cur.execute('UPDATE {in_flight} SET owner = ?, lease_until = ? WHERE token = ? '
                        'AND owner = ?'.format(**self._t),
                        (owner, lease_until, token, expected_owner))
            if cur.rowcount != 1:
                return None
            row = cur.execute('SELECT token, owner, lease_until, data FROM {in_flight} '
                              'WHERE token = ?'.format(**self._t), (token,)).fetchone()
        return InFlight(*row)

    def requeue_in_flight(self, token: str, data: bytes, priority: int = 0,
                          head: bool = False) -> bool:
        with self._write('requeue an in-flight record') as cur:
            cur.execute('DELETE FROM {in_flight} WHERE token = ?'.format(**self._t), (token,))
            if cur.rowcount != 1:
                return False
            # At the head: an id below every queued one (rowids may be negative).
            cur.execute(('INSERT INTO {queue} (id, priority, data) VALUES ((SELECT '
                         'MIN(id) - 1 FROM {queue}), ?, ?)' if head else
                         'INSERT INTO {queue} (priority, data) VALUES (?, ?)')
                        .format(**self._t), (priority or 0, data))
            return True

    def flush_in_flight(self) -> None:
        self._run('flush in-flight records', 'DELETE FROM {in_flight}')

    def flush_all(self) -> None:
        with self._write('flush everything') as cur:
            for table in _TABLES:
                cur.execute('DELETE FROM %s' % self._t[table])


def _limit(limit: int | None) -> int:
    """SQLite's ``LIMIT -1`` means no limit."""
    return -1 if limit is None else max(int(limit), 0)
