"""``History``: a durable store of the bus's events, losses and broker restarts (SPEC §8).

A SQLite file by default (``sqlite:///signal-history.db``). One thread writes (the history
subscriber, ``signal_bus.dashboard.recorder``), in batched transactions; any thread reads,
each through its own connection (WAL mode, so readers never wait for the writer).

What is kept besides the events themselves, so the overview never scans them:
``tasks`` (one row per task id: its current state, every life on one timeline),
``totals`` (events per signal, task and queue — never lowered by pruning, so the
Prometheus counters continue across restarts), ``minutes`` (events per minute and
signal, for the throughput chart), ``durations`` (histogram buckets of wait and run
times), ``incidents`` (losses and broker restarts) and ``state`` (the last ``(epoch,
seq)`` stored, where a restarted subscriber resumes).

The query names follow Huey's stats module: ``window_counts``, ``recent_events``,
``search_events``, ``inflight``, ``task_breakdown``, ``throughput``; ``overview`` and
``timeline`` are ours.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import msgpack

from .exceptions import BusConfigError
from .history_batch import (BUCKETS, FAILED_SIGNALS, OPEN_CAP, BatchSummary, OpenTimes,
                            ReceivedEvent, breakdown_of, error_text, fresh_events,
                            number_lives, overview_of, summarize, throughput_of)

__all__ = ['BUCKETS', 'DEFAULT_HISTORY', 'FAILED_SIGNALS', 'History', 'Retention']

DEFAULT_HISTORY = 'sqlite:///signal-history.db'
_PRUNE_CHUNK = 20_000

_SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, epoch INTEGER, seq INTEGER, ts REAL,
    signal TEXT, task_id TEXT, task_name TEXT, queue TEXT, source TEXT, retries INTEGER,
    final INTEGER, error TEXT, body BLOB);
CREATE INDEX IF NOT EXISTS events_task ON events(task_id, id);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, name TEXT, queue TEXT, first_ts REAL, life_ts REAL,
    last_ts REAL, last_id INTEGER, last_signal TEXT, final INTEGER, failed INTEGER,
    error TEXT);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks(life_ts) WHERE final = 0;
CREATE INDEX IF NOT EXISTS tasks_failed ON tasks(last_ts) WHERE failed = 1;
CREATE TABLE IF NOT EXISTS totals (
    signal TEXT, task TEXT, queue TEXT, count INTEGER, PRIMARY KEY (signal, task, queue));
CREATE TABLE IF NOT EXISTS minutes (
    minute INTEGER, signal TEXT, count INTEGER, PRIMARY KEY (minute, signal));
CREATE TABLE IF NOT EXISTS durations (
    metric TEXT, task TEXT, bucket INTEGER, count INTEGER, total REAL,
    PRIMARY KEY (metric, task, bucket));
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, kind TEXT, epoch INTEGER,
    count INTEGER, first_seq INTEGER, last_seq INTEGER);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value);
"""

_TASK_UPSERT = """
INSERT INTO tasks (task_id, name, queue, first_ts, life_ts, last_ts, last_id, last_signal,
                   final, failed, error)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT(task_id) DO UPDATE SET
    queue = coalesce(excluded.queue, tasks.queue),
    life_ts = CASE WHEN tasks.final = 1 OR ?12 THEN excluded.life_ts ELSE tasks.life_ts END,
    last_ts = excluded.last_ts, last_id = excluded.last_id,
    last_signal = excluded.last_signal, final = excluded.final,
    failed = max(tasks.failed, excluded.failed),
    error = coalesce(excluded.error, tasks.error)
"""

_EVENT_COLUMNS = 'id, epoch, seq, ts, signal, task_id, task_name, queue, source, retries, ' \
                 'final, error'


@dataclass(frozen=True)
class Retention:
    """How long the history keeps what (SPEC §8 defaults)."""

    retention_hours: float = 48.0
    max_events: int = 1_000_000
    keep_failures_hours: float = 168.0
    max_failures: int = 100_000

    def __post_init__(self) -> None:
        for name in ('retention_hours', 'max_events', 'keep_failures_hours', 'max_failures'):
            if getattr(self, name) <= 0:
                raise BusConfigError('%s must be positive, not %r' % (name, getattr(self, name)))


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` history URL (relative to the working directory,
    ``sqlite:////abs`` absolute); raises ``BusConfigError`` for anything else."""
    if not url.startswith('sqlite:///') or len(url) <= len('sqlite:///'):
        raise BusConfigError('unsupported history URL %r: give sqlite:///path/to/file.db or '
                             'redis://host:port/db' % url)
    return url[len('sqlite:///'):]


def _signed(epoch: Any) -> int | None:
    """A broker epoch (unsigned 64-bit) as SQLite's signed INTEGER."""
    return None if epoch is None else int(epoch) - (1 << 64) if int(epoch) >= 1 << 63 \
        else int(epoch)


def _unsigned(epoch: Any) -> int | None:
    return None if epoch is None else int(epoch) + (1 << 64) if int(epoch) < 0 else int(epoch)


class History:
    """The history store at ``url``: written by one thread, read by any.

    ``History(url)`` creates the file and its tables when missing; with a ``redis://`` URL
    it returns a ``signal_bus.history_redis.RedisHistory``, which has the same methods. Reads return plain
    dicts and lists, ready for JSON.
    """

    def __new__(cls, url: str = DEFAULT_HISTORY, retention: Retention | None = None) -> Any:
        if url.startswith(('redis://', 'rediss://', 'unix://')):
            from .history_redis import RedisHistory
            return RedisHistory(url, retention)
        return super().__new__(cls)

    def __init__(self, url: str = DEFAULT_HISTORY, retention: Retention | None = None) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.retention = retention or Retention()
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise BusConfigError('the folder of history file %r does not exist' % self.path)
        self._local = threading.local()
        self._open = OpenTimes()
        self._write_lock = threading.Lock()
        with self._write_lock:
            self._conn().executescript(_SCHEMA)
            self._load_open()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, 'conn', None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute('PRAGMA synchronous=NORMAL')
            self._local.conn = conn
        return conn

    def _load_open(self) -> None:
        rows = self._conn().execute(
            "SELECT task_id, life_ts, last_signal, last_ts FROM tasks WHERE final = 0 "
            "ORDER BY life_ts DESC LIMIT ?", (OPEN_CAP,)).fetchall()
        for row in rows:
            executing = row['last_ts'] if row['last_signal'] == 'executing' else None
            self._open.note(row['task_id'], row['life_ts'], executing)

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, 'conn', None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- writing -------------------------------------------------------------------------

    def position(self) -> tuple[int | None, int]:
        """The ``(epoch, seq)`` of the last event stored (``(None, 0)`` when empty)."""
        rows = dict(self._conn().execute(
            "SELECT key, value FROM state WHERE key IN ('epoch', 'seq')").fetchall())
        epoch = rows.get('epoch')
        return _unsigned(epoch), int(rows.get('seq') or 0)

    def store(self, events: Iterable[Mapping[str, Any]],
              incidents: Iterable[Mapping[str, Any]] = ()) -> int:
        """Store events (wire maps with ``seq`` and ``epoch``) and incidents (``kind``:
        ``loss`` | ``restart`` | ``publisher-loss``, ``count``, ``first_seq``,
        ``last_seq``, ``epoch``) in one transaction. Events at or below the stored
        position of their epoch are skipped (a replay that overlaps). Returns how many
        events were stored."""
        with self._write_lock:
            conn = self._conn()
            conn.execute('BEGIN IMMEDIATE')
            try:
                for incident in incidents:
                    self._store_incident(conn, incident)
                stored = self._store_events(conn, events)
                conn.execute('COMMIT')
            except BaseException:
                conn.execute('ROLLBACK')
                raise
            return stored

    def _store_incident(self, conn: sqlite3.Connection, incident: Mapping[str, Any]) -> None:
        conn.execute('INSERT INTO incidents (ts, kind, epoch, count, first_seq, last_seq) '
                     'VALUES (?, ?, ?, ?, ?, ?)',
                     (incident.get('ts', time.time()), incident['kind'],
                      _signed(incident.get('epoch')), incident.get('count'),
                      incident.get('first_seq'), incident.get('last_seq')))
        if incident.get('count'):
            conn.execute("INSERT INTO state VALUES ('lost', ?) ON CONFLICT(key) DO UPDATE "
                         "SET value = value + excluded.value", (int(incident['count']),))

    def _store_events(self, conn: sqlite3.Connection,
                      events: Iterable[Mapping[str, Any]]) -> int:
        rows = fresh_events(events, *self.position())
        if not rows:
            return 0
        first_id = self._insert_events(conn, rows)
        summary = summarize(rows, first_id, self._open)
        self._write_summary(conn, summary)
        conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)",
                         [('epoch', _signed(rows[-1].get('epoch'))),
                          ('seq', int(rows[-1].get('seq') or 0))])
        return len(rows)

    def _insert_events(self, conn: sqlite3.Connection, rows: list[Mapping[str, Any]]) -> int:
        row = conn.execute('SELECT seq FROM sqlite_sequence WHERE name = ?',
                           ('events',)).fetchone()
        first_id = (row[0] if row else 0) + 1
        conn.executemany(
            'INSERT INTO events (epoch, seq, ts, signal, task_id, task_name, queue, source, '
            'retries, final, error, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [(_signed(e.get('epoch')), e.get('seq'), e.get('ts'), e.get('signal'),
              e.get('task_id'), e.get('task_name'), e.get('queue'), e.get('source'),
              e.get('retries'), 1 if e.get('final') else 0, error_text(e.get('exc')),
              e.body_frame if type(e) is ReceivedEvent
              else msgpack.packb(dict(e), use_bin_type=True, default=repr)) for e in rows])
        return first_id

    @staticmethod
    def _write_summary(conn: sqlite3.Connection, summary: BatchSummary) -> None:
        conn.executemany(_TASK_UPSERT, [
            (t.task_id, t.name, t.queue, t.first_ts, t.life_ts, t.last_ts, t.last_id,
             t.last_signal, t.final, t.failed, t.error, t.reopened)
            for t in summary.tasks.values()])
        conn.executemany('INSERT INTO totals VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET '
                         'count = count + excluded.count',
                         [(*key, count) for key, count in summary.totals.items()])
        conn.executemany('INSERT INTO minutes VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET '
                         'count = count + excluded.count',
                         [(*key, count) for key, count in summary.minutes.items()])
        conn.executemany('INSERT INTO durations VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE '
                         'SET count = count + excluded.count, total = total + excluded.total',
                         [(*key, int(count), total)
                          for key, (count, total) in summary.durations.items()])

    # -- retention -----------------------------------------------------------------------

    def prune(self, now: float | None = None) -> int:
        """Drop events past the retention (oldest first, failed timelines kept longer);
        returns how many were dropped. Totals and incidents' counts are never lowered."""
        now = time.time() if now is None else now
        policy = self.retention
        with self._write_lock:
            conn = self._conn()
            conn.execute('UPDATE tasks SET failed = 0 WHERE failed = 1 AND last_ts < ?',
                         (now - policy.keep_failures_hours * 3600,))
            conn.execute('UPDATE tasks SET failed = 0 WHERE task_id IN (SELECT task_id FROM '
                         'tasks WHERE failed = 1 ORDER BY last_ts DESC LIMIT -1 OFFSET ?)',
                         (policy.max_failures,))
            boundary = self._prune_boundary(conn, now - policy.retention_hours * 3600)
            dropped = 0
            while boundary:
                cursor = conn.execute(
                    'DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= ? AND '
                    'task_id NOT IN (SELECT task_id FROM tasks WHERE failed = 1) '
                    'ORDER BY id LIMIT ?)', (boundary, _PRUNE_CHUNK))
                dropped += cursor.rowcount
                if cursor.rowcount < _PRUNE_CHUNK:
                    break
            if dropped:
                conn.execute('DELETE FROM tasks WHERE last_id <= ? AND failed = 0 AND final = 1',
                             (boundary,))
                conn.execute('DELETE FROM minutes WHERE minute < ?',
                             (int((now - policy.retention_hours * 3600) // 60),))
            conn.execute('DELETE FROM incidents WHERE id <= (SELECT max(id) FROM incidents) '
                         '- 10000')
            return dropped

    def _prune_boundary(self, conn: sqlite3.Connection, cutoff: float) -> int:
        """The highest event id to drop: older than ``cutoff`` or beyond ``max_events``."""
        old = conn.execute('SELECT id FROM events WHERE ts < ? ORDER BY ts DESC LIMIT 1',
                           (cutoff,)).fetchone()
        boundary = old[0] if old else 0
        count = conn.execute('SELECT count(*) FROM events').fetchone()[0]
        excess = count - self.retention.max_events
        if excess > 0:
            row = conn.execute('SELECT id FROM events ORDER BY id LIMIT 1 OFFSET ?',
                               (excess - 1,)).fetchone()
            boundary = max(boundary, row[0] if row else 0)
        return boundary

    # -- reading -------------------------------------------------------------------------

    def _rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        rows = [dict(row) for row in self._conn().execute(sql, params).fetchall()]
        for row in rows:
            if 'epoch' in row:
                row['epoch'] = _unsigned(row['epoch'])
        return rows

    def window_counts(self, seconds: float, now: float | None = None) -> dict[str, int]:
        """Events per signal over the last ``seconds`` (whole minutes, from ``minutes``)."""
        now = time.time() if now is None else now
        rows = self._conn().execute(
            'SELECT signal, sum(count) FROM minutes WHERE minute >= ? GROUP BY signal',
            (int((now - seconds) // 60),)).fetchall()
        return {signal: int(count) for signal, count in rows}

    def recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last ``limit`` events stored, newest first."""
        return self._rows('SELECT %s FROM events ORDER BY id DESC LIMIT ?' % _EVENT_COLUMNS,
                          (limit,))

    def search_events(self, signal: str | None = None, task: str | None = None,
                      q: str | None = None, limit: int = 100,
                      after: int | None = None) -> list[dict[str, Any]]:
        """Events newest first, by signal, task name glob (``*``, ``?``), a text found in
        the task id, name or error, and, with ``after``, only ids above it (oldest first)."""
        where: list[str] = []
        params: list[str | int] = []
        if signal:
            where.append('signal = ?')
            params.append(signal)
        if task:
            where.append('task_name GLOB ?')
            params.append(task)
        if q:
            where.append("(task_id LIKE ? ESCAPE '\\' OR task_name LIKE ? ESCAPE '\\' "
                         "OR error LIKE ? ESCAPE '\\')")
            pattern = '%' + q.replace('\\', '\\\\').replace('%', '\\%').replace('_', '\\_') + '%'
            params += [pattern] * 3
        if after is not None:
            where.append('id > ?')
            params.append(after)
        order = 'ASC' if after is not None else 'DESC'
        sql = 'SELECT %s FROM events %s ORDER BY id %s LIMIT ?' % (
            _EVENT_COLUMNS, ('WHERE ' + ' AND '.join(where)) if where else '', order)
        return self._rows(sql, (*params, max(1, min(int(limit), 1000))))

    def inflight(self, limit: int = 100, now: float | None = None) -> list[dict[str, Any]]:
        """Open tasks (no final event yet in their current life), oldest first, with
        ``age`` in seconds since that life began and their last ``signal``."""
        now = time.time() if now is None else now
        rows = self._rows('SELECT task_id, name, queue, life_ts, last_signal FROM tasks '
                          'WHERE final = 0 ORDER BY life_ts LIMIT ?', (limit,))
        for row in rows:
            row['age'] = max(0.0, now - (row['life_ts'] or now))
        return rows

    def inflight_count(self) -> int:
        """How many tasks are open."""
        return int(self._conn().execute(
            'SELECT count(*) FROM tasks WHERE final = 0').fetchone()[0])

    def task_breakdown(self) -> dict[str, dict[str, int]]:
        """Events per task name and signal, over everything ever stored (totals)."""
        return breakdown_of(self.totals())

    def throughput(self, minutes: int = 60, now: float | None = None) -> list[dict[str, Any]]:
        """One point per minute over the last ``minutes``: ``{"minute": epoch seconds,
        "count": events, "failed": failure events}``, oldest first, empty minutes as 0."""
        now = time.time() if now is None else now
        return throughput_of(self._conn().execute(
            'SELECT minute, signal, count FROM minutes WHERE minute > ?',
            (int(now // 60) - minutes,)), minutes, now)

    def totals(self) -> list[dict[str, Any]]:
        """Every ``(signal, task, queue)`` with its event count since the history began."""
        return self._rows('SELECT signal, task, queue, count FROM totals')

    def durations(self) -> list[dict[str, Any]]:
        """Histogram rows: ``metric`` (``wait``/``runtime``), ``task``, ``bucket`` (index
        into ``BUCKETS``), ``count`` and ``total`` seconds."""
        return self._rows('SELECT metric, task, bucket, count, total FROM durations')

    def lost_total(self) -> int:
        """Events counted as lost since the history began."""
        row = self._conn().execute("SELECT value FROM state WHERE key = 'lost'").fetchone()
        return int(row[0]) if row else 0

    def incidents(self, limit: int = 20) -> list[dict[str, Any]]:
        """Losses and broker restarts, newest first."""
        return self._rows('SELECT id, ts, kind, epoch, count, first_seq, last_seq FROM '
                          'incidents ORDER BY id DESC LIMIT ?', (limit,))

    def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]:
        """Tasks whose last life ended in failure, newest first, with their error."""
        return self._rows('SELECT task_id, name, queue, last_ts, last_signal, error FROM tasks '
                          'WHERE failed = 1 ORDER BY last_ts DESC LIMIT ?', (limit,))

    def overview(self, seconds: float = 300, now: float | None = None) -> dict[str, Any]:
        """Everything the overview page shows, as one JSON-ready map."""
        return overview_of(self, seconds, time.time() if now is None else now)

    def timeline(self, task_id: str) -> dict[str, Any] | None:
        """A task's events in stream order, every life on one timeline (``life`` counts
        from 1; an ``enqueued``/``scheduled`` after a final event opens the next), each
        with the full wire map under ``body``; ``None`` when the task is unknown."""
        rows = self._conn().execute(
            'SELECT %s, body FROM events WHERE task_id = ? ORDER BY id' % _EVENT_COLUMNS,
            (task_id,)).fetchall()
        task = self._conn().execute('SELECT * FROM tasks WHERE task_id = ?',
                                    (task_id,)).fetchone()
        if not rows and task is None:
            return None
        events = []
        for row in rows:
            event = dict(row)
            event['epoch'] = _unsigned(event['epoch'])
            body = msgpack.unpackb(event.pop('body'), raw=False)
            event.update(exc=body.get('exc'), args=body.get('args'),
                         kwargs=body.get('kwargs'), host=body.get('host'),
                         pid=body.get('pid'))
            events.append(event)
        return {'id': task_id, 'task': dict(task) if task is not None else None,
                'lives': number_lives(events), 'events': events}
