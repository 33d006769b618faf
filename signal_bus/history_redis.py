"""The history in Redis (``redis://host:port/db``): a Stream of events plus indexes, so
several dashboards on several hosts share one history (SPEC §8).

Keys, under the prefix ``signal-history``: ``:events`` (a Stream whose entry ids are the
history's own ids, ``<id>-0``), ``:id`` (the id counter), ``:pos`` (the last ``seq``
stored per broker epoch), ``:state`` (position and the lost count), ``:task:<id>`` (a
task's state) and ``:tl:<id>`` (its event ids), ``:open`` and ``:failed`` (sorted sets
of task ids), ``:totals``, ``:minutes``, ``:durations`` (counters), ``:incidents`` (a
Stream) and ``:kept`` (events of failed tasks past the events' retention).

Each event is stored once however many dashboards receive it: a batch first claims its
``seq`` range in ``:pos`` with one script (atomic), and writes only what lies beyond what
was claimed before. A dashboard that dies between claim and write loses that batch.
"""
from __future__ import annotations

import fnmatch
import threading
import time
from typing import Any, Iterable, Mapping, cast

import msgpack
import redis

from .exceptions import BusConfigError
from .history import Retention
from .history_batch import (BUCKETS, FAILED_SIGNALS, OPEN_CAP, OpenTimes, error_text,
                            fresh_events, number_lives, overview_of, summarize,
                            throughput_of, breakdown_of)

PREFIX = 'signal-history'
_SEP = '\x1f'
_CLAIM = """
local previous = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > previous then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return previous
"""
_ROW_KEYS = ('id', 'epoch', 'seq', 'ts', 'signal', 'task_id', 'task_name', 'queue',
             'source', 'retries', 'final', 'error')
#: At most this many stream entries are read to answer one search.
_SEARCH_SCAN = 200_000
_PRUNE_SCAN = 50_000
# redis-py types every reply as a union (str or bytes, None, an awaitable); this client is
# synchronous and does not decode responses, so the casts below name what Redis answers.
#: A stream read (XRANGE, XREVRANGE): ``(entry id, fields)`` pairs.
_Stream = list[tuple[bytes, dict[bytes, bytes]]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _row(data: Mapping[str, Any]) -> dict[str, Any]:
    row = {key: data.get(key) for key in _ROW_KEYS}
    row['final'] = 1 if data.get('final') else 0
    row['error'] = error_text(data.get('exc'))
    return row


class RedisHistory:
    """The ``History`` API over Redis (``History(url)`` returns one for ``redis://``)."""

    def __init__(self, url: str, retention: Retention | None = None) -> None:
        self.url = url
        self.retention = retention or Retention()
        try:
            self._redis = redis.Redis.from_url(url)
            self._redis.ping()
        except (redis.RedisError, ValueError) as exc:
            raise BusConfigError('cannot reach the history at %s: %s' % (url, exc)) from None
        self._claim = self._redis.register_script(_CLAIM)
        self._open = OpenTimes()
        self._write_lock = threading.Lock()
        opened = cast('list[tuple[bytes, float]]', self._redis.zrange(
            self._key('open'), 0, OPEN_CAP - 1, withscores=True))
        for task_id, life_ts in opened:
            self._open.note(_text(task_id), life_ts, None)

    def _key(self, *parts: str) -> str:
        return ':'.join((PREFIX,) + parts)

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()

    # -- writing -------------------------------------------------------------------------

    def position(self) -> tuple[int | None, int]:
        """The ``(epoch, seq)`` of the last event stored (``(None, 0)`` when empty)."""
        epoch, seq = self._redis.hmget(self._key('state'), 'epoch', 'seq')
        return (int(epoch) if epoch is not None else None, int(seq or 0))

    def store(self, events: Iterable[Mapping[str, Any]],
              incidents: Iterable[Mapping[str, Any]] = ()) -> int:
        """Store events and incidents (as ``History.store``); returns how many events were
        new. What another dashboard stored already is skipped."""
        with self._write_lock:
            rows = self._claimed(fresh_events(events, *self.position()))
            pipe = self._redis.pipeline(transaction=True)
            for incident in incidents:
                pipe.xadd(self._key('incidents'), {'d': msgpack.packb(
                    dict(incident, ts=incident.get('ts', time.time())))},
                    maxlen=10_000, approximate=True)
                if incident.get('count'):
                    pipe.hincrby(self._key('state'), 'lost', int(incident['count']))
            if rows:
                self._write_events(pipe, rows)
            pipe.execute()
            return len(rows)

    def _claimed(self, events: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The events beyond what any dashboard claimed before, claiming them."""
        last: dict[Any, int] = {}
        for event in events:
            last[event.get('epoch')] = int(event.get('seq') or 0)
        before = {epoch: int(self._claim(keys=[self._key('pos')], args=[str(epoch), seq]))
                  for epoch, seq in last.items()}
        return [e for e in events if int(e.get('seq') or 0) > before[e.get('epoch')]]

    def _write_events(self, pipe: Any, rows: list[Mapping[str, Any]]) -> None:
        first_id = int(self._redis.incrby(self._key('id'), len(rows))) - len(rows) + 1
        summary = summarize(rows, first_id, self._open)
        for offset, event in enumerate(rows):
            data = dict(event, id=first_id + offset)
            pipe.xadd(self._key('events'), {'d': msgpack.packb(data, default=repr)},
                      id='%d-0' % data['id'])
            pipe.zadd(self._key('tl', str(event.get('task_id'))), {str(data['id']): data['id']})
        self._write_tasks(pipe, summary.tasks.values())
        for (signal, task, queue), count in summary.totals.items():
            pipe.hincrby(self._key('totals'), _SEP.join((signal, str(task), queue)), count)
        for (minute, signal), count in summary.minutes.items():
            pipe.hincrby(self._key('minutes'), '%d%s%s' % (minute, _SEP, signal), count)
        for (metric, task, slot), (times, total) in summary.durations.items():
            field = _SEP.join((metric, task, str(slot)))
            pipe.hincrby(self._key('durations'), field + _SEP + 'c', int(times))
            pipe.hincrbyfloat(self._key('durations'), field + _SEP + 's', total)
        pipe.hset(self._key('state'), mapping={'epoch': rows[-1].get('epoch'),
                                               'seq': int(rows[-1].get('seq') or 0)})

    def _write_tasks(self, pipe: Any, tasks: Iterable[Any]) -> None:
        tasks = list(tasks)
        reader = self._redis.pipeline(transaction=False)
        for task in tasks:
            reader.hmget(self._key('task', task.task_id), 'final', 'life_ts', 'failed', 'error',
                         'first_ts')
        for task, (final, life_ts, failed, error, first_ts) in zip(tasks, reader.execute()):
            known = first_ts is not None
            if known and not (int(final or 0) or task.reopened):
                task.life_ts = float(life_ts)
            fields = {'name': str(task.name), 'queue': str(task.queue or ''),
                      'first_ts': float(first_ts) if known else task.first_ts,
                      'life_ts': task.life_ts, 'last_ts': task.last_ts,
                      'last_id': task.last_id, 'last_signal': str(task.last_signal),
                      'final': task.final, 'failed': max(task.failed, int(failed or 0)),
                      'error': task.error or _text(error or b'')}
            pipe.hset(self._key('task', task.task_id), mapping=fields)
            if task.final:
                pipe.zrem(self._key('open'), task.task_id)
            else:
                pipe.zadd(self._key('open'), {task.task_id: task.life_ts})
            if fields['failed']:
                pipe.zadd(self._key('failed'), {task.task_id: task.last_ts})

    # -- reading -------------------------------------------------------------------------

    def _entries(self, raw: Any) -> list[dict[str, Any]]:
        """The events of a stream read (as redis-py answers it)."""
        return [msgpack.unpackb(fields[b'd'], raw=False) for _, fields in cast(_Stream, raw)]

    def window_counts(self, seconds: float, now: float | None = None) -> dict[str, int]:
        """Events per signal over the last ``seconds`` (whole minutes)."""
        now = time.time() if now is None else now
        counts: dict[str, int] = {}
        for minute, signal, count in self._minute_rows():
            if minute >= int((now - seconds) // 60):
                counts[signal] = counts.get(signal, 0) + count
        return counts

    def _minute_rows(self) -> list[tuple[int, str, int]]:
        rows = []
        for field, count in self._redis.hgetall(self._key('minutes')).items():
            minute, signal = _text(field).split(_SEP, 1)
            rows.append((int(minute), signal, int(count)))
        return rows

    def recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last ``limit`` events stored, newest first."""
        return [_row(e) for e in self._entries(
            self._redis.xrevrange(self._key('events'), count=limit))]

    def search_events(self, signal: str | None = None, task: str | None = None,
                      q: str | None = None, limit: int = 100,
                      after: int | None = None) -> list[dict[str, Any]]:
        """As ``History.search_events``; reads at most 200,000 of the newest entries."""
        limit = max(1, min(int(limit), 1000))
        needle = q.lower() if q else None

        def wanted(row: dict[str, Any]) -> bool:
            return ((not signal or row['signal'] == signal)
                    and (not task or fnmatch.fnmatchcase(str(row['task_name']), task))
                    and (not needle or any(needle in str(row[k] or '').lower()
                                           for k in ('task_id', 'task_name', 'error'))))
        found: list[dict[str, Any]] = []
        cursor, scanned = ('(%d-0' % after) if after is not None else '+', 0
        while len(found) < limit and scanned < _SEARCH_SCAN:
            raw = (self._redis.xrange(self._key('events'), min=cursor, count=1000)
                   if after is not None else
                   self._redis.xrevrange(self._key('events'), max=cursor, count=1000))
            if not raw:
                break
            scanned += len(raw)
            cursor = '(' + _text(raw[-1][0])
            found.extend(row for row in map(_row, self._entries(raw)) if wanted(row))
        return found[:limit]

    def _tasks(self, task_ids: list[str]) -> list[dict[str, Any]]:
        pipe = self._redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(self._key('task', task_id))
        rows = []
        for task_id, data in zip(task_ids, pipe.execute()):
            row: dict[str, Any] = {_text(k): _text(v) for k, v in data.items()}
            for key in ('first_ts', 'life_ts', 'last_ts'):
                row[key] = float(row[key]) if key in row else None
            for key in ('last_id', 'final', 'failed'):
                row[key] = int(row[key]) if key in row else 0
            row['task_id'] = task_id
            rows.append(row)
        return rows

    def inflight(self, limit: int = 100, now: float | None = None) -> list[dict[str, Any]]:
        """Open tasks, oldest first, with ``age`` and their last ``signal``."""
        now = time.time() if now is None else now
        ids = [_text(t) for t in self._redis.zrange(self._key('open'), 0, limit - 1)]
        rows = self._tasks(ids)
        for row in rows:
            row['age'] = max(0.0, now - (row['life_ts'] or now))
        return rows

    def inflight_count(self) -> int:
        """How many tasks are open."""
        return int(self._redis.zcard(self._key('open')))

    def task_breakdown(self) -> dict[str, dict[str, int]]:
        """Events per task name and signal, over everything ever stored."""
        return breakdown_of(self.totals())

    def throughput(self, minutes: int = 60, now: float | None = None) -> list[dict[str, Any]]:
        """One point per minute over the last ``minutes`` (as ``History.throughput``)."""
        return throughput_of(self._minute_rows(), minutes,
                             time.time() if now is None else now)

    def totals(self) -> list[dict[str, Any]]:
        """Every ``(signal, task, queue)`` with its event count."""
        rows = []
        for field, count in self._redis.hgetall(self._key('totals')).items():
            signal, task, queue = _text(field).split(_SEP)
            rows.append({'signal': signal, 'task': task, 'queue': queue, 'count': int(count)})
        return rows

    def durations(self) -> list[dict[str, Any]]:
        """Histogram rows, as ``History.durations``."""
        rows: dict[tuple[str, str, int], dict[str, Any]] = {}
        for field, value in self._redis.hgetall(self._key('durations')).items():
            metric, task, slot, kind = _text(field).split(_SEP)
            row = rows.setdefault((metric, task, int(slot)), {
                'metric': metric, 'task': task, 'bucket': min(int(slot), len(BUCKETS) - 1),
                'count': 0, 'total': 0.0})
            row['count' if kind == 'c' else 'total'] = (int(value) if kind == 'c'
                                                         else float(value))
        return list(rows.values())

    def lost_total(self) -> int:
        """Events counted as lost since the history began."""
        return int(self._redis.hget(self._key('state'), 'lost') or 0)

    def incidents(self, limit: int = 20) -> list[dict[str, Any]]:
        """Losses and broker restarts, newest first."""
        entries = cast(_Stream, self._redis.xrevrange(self._key('incidents'), count=limit))
        return [dict(e, id=_text(entry_id)) for entry_id, e in (
            (entry_id, msgpack.unpackb(fields[b'd'], raw=False))
            for entry_id, fields in entries)]

    def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]:
        """Tasks whose last life ended in failure, newest first, with their error."""
        ids = [_text(t) for t in self._redis.zrevrange(self._key('failed'), 0, limit - 1)]
        return self._tasks(ids)

    def overview(self, seconds: float = 300, now: float | None = None) -> dict[str, Any]:
        """Everything the overview page shows, as one JSON-ready map."""
        return overview_of(self, seconds, time.time() if now is None else now)

    def timeline(self, task_id: str) -> dict[str, Any] | None:
        """As ``History.timeline``: every life on one timeline; None when unknown."""
        ids = [int(i) for i in cast('list[bytes]',
                                    self._redis.zrange(self._key('tl', task_id), 0, -1))]
        task = self._tasks([task_id])[0] if self._redis.exists(
            self._key('task', task_id)) else None
        if not ids and task is None:
            return None
        pipe = self._redis.pipeline(transaction=False)
        for event_id in ids:
            pipe.xrange(self._key('events'), min='%d-0' % event_id, max='%d-0' % event_id)
            pipe.hget(self._key('kept'), str(event_id))
        replies = pipe.execute()
        events = []
        for live, kept in zip(replies[::2], replies[1::2]):
            data = self._entries(live)[0] if live else (
                msgpack.unpackb(kept, raw=False) if kept else None)
            if data is not None:
                events.append(dict(_row(data), exc=data.get('exc'), args=data.get('args'),
                                   kwargs=data.get('kwargs'), host=data.get('host'),
                                   pid=data.get('pid')))
        return {'id': task_id, 'task': task, 'lives': number_lives(events), 'events': events}

    # -- retention -----------------------------------------------------------------------

    def prune(self, now: float | None = None) -> int:
        """As ``History.prune``: events past the retention go, oldest first, failed
        tasks' events are moved aside (``:kept``) for ``keep_failures_hours``."""
        now = time.time() if now is None else now
        policy = self.retention
        with self._write_lock:
            dropped = self._drop_failures(now - policy.keep_failures_hours * 3600)
            dropped += self._trim(now - policy.retention_hours * 3600)
            old = [field for field in self._redis.hkeys(self._key('minutes'))
                   if int(_text(field).split(_SEP)[0]) < (now - policy.retention_hours
                                                         * 3600) // 60]
            if old:
                self._redis.hdel(self._key('minutes'), *old)
            return dropped

    def _drop_failures(self, cutoff: float) -> int:
        """Failed tasks past ``keep_failures_hours`` or beyond ``max_failures`` are failed
        no longer: their events moved aside are deleted (how many is returned)."""
        key = self._key('failed')
        gone = set(self._redis.zrangebyscore(key, '-inf', '(%f' % cutoff))
        gone.update(self._redis.zrange(key, 0, -(self.retention.max_failures + 1)))
        dropped = 0
        for task_id in map(_text, gone):
            self._redis.zrem(key, task_id)
            ids = cast('list[bytes]', self._redis.zrange(self._key('tl', task_id), 0, -1))
            pipe = self._redis.pipeline(transaction=False)
            for event_id in ids:
                pipe.hdel(self._key('kept'), _text(event_id))
            moved = [i for i, removed in zip(ids, pipe.execute()) if removed]
            if moved:
                self._redis.zrem(self._key('tl', task_id), *moved)
            dropped += len(moved)
            self._forget_if_done(task_id)
        return dropped

    def _forget_if_done(self, task_id: str) -> None:
        if self._redis.zcard(self._key('tl', task_id)) == 0 and \
                self._redis.hget(self._key('task', task_id), 'final') in (b'1', None):
            self._redis.delete(self._key('task', task_id), self._key('tl', task_id))
            self._redis.zrem(self._key('open'), task_id)

    def _trim(self, cutoff: float) -> int:
        """Drop the oldest events (older than ``cutoff`` or beyond ``max_events``)."""
        excess = int(self._redis.xlen(self._key('events'))) - self.retention.max_events
        doomed = []
        for index, data in enumerate(self._entries(self._redis.xrange(
                self._key('events'), count=_PRUNE_SCAN))):
            if index >= excess and float(data.get('ts') or 0) >= cutoff:
                break
            doomed.append(data)
        if not doomed:
            return 0
        tasks = sorted({str(d.get('task_id')) for d in doomed})
        pipe = self._redis.pipeline(transaction=False)
        for task_id in tasks:
            pipe.zscore(self._key('failed'), task_id)
        failed = {t for t, score in zip(tasks, pipe.execute()) if score is not None}
        pipe = self._redis.pipeline(transaction=True)
        for data in doomed:
            task_id = str(data.get('task_id'))
            if task_id in failed:
                pipe.hset(self._key('kept'), str(data['id']), msgpack.packb(data, default=repr))
            else:
                pipe.zrem(self._key('tl', task_id), str(data['id']))
        pipe.xtrim(self._key('events'), minid='%d-1' % doomed[-1]['id'], approximate=False)
        pipe.execute()
        for task_id in set(tasks) - failed:
            self._forget_if_done(task_id)
        return sum(1 for data in doomed if str(data.get('task_id')) not in failed)
