"""What a subscriber hands to user code: ``Event`` and ``ErrorInfo``.

An ``Event`` is the event's wire map with the broker's meta merged in, read as attributes:
``signal``, ``task_id``, ``task_name``, ``tseq``, ``ts``, ``host``, ``pid``, ``source``,
``args``, ``kwargs``, ``retries``, ``final``, ``exc`` and ``seq``, ``sseq``, ``epoch``,
``gap``. It is also the ``task`` a subscriber's handlers receive, so it answers to the
names a queue handler uses: ``task.id`` and ``task.name``.
"""
from __future__ import annotations

import datetime
import logging
from typing import Any, Iterator, Mapping

import msgpack

from .exceptions import WireError
from .wire import EventMessage, decode_body_frame, topic_for

logger = logging.getLogger('signal_bus.subscriber')

#: Keys a body may lack; reading them gives these values instead of ``AttributeError``.
_OPTIONAL: dict[str, Any] = {'exc': None, 'gap': False, 'final': False}
#: What the topic and meta frames carry (attributes of their own, not read from the body).
_FRAME_KEYS = ('signal', 'task_name', 'seq', 'sseq', 'epoch')
_META_KEYS = frozenset(('seq', 'sseq', 'epoch', 'gap'))
_PRIVATE = frozenset(('_body', '_map'))


class ErrorInfo:
    """The exception of an ``error`` event as data: ``type``, ``message``, ``traceback``.

    ``type`` is the qualified class name (``ValueError``, ``myapp.errors.Boom``).
    """

    __slots__ = ('type', 'message', 'traceback')

    def __init__(self, type: str, message: str, traceback: str | None = None) -> None:
        self.type = type
        self.message = message
        self.traceback = traceback

    @classmethod
    def from_map(cls, data: Any) -> 'ErrorInfo | None':
        """Build one from a wire ``exc`` map; ``None`` when there is no usable map."""
        if not isinstance(data, Mapping):
            return None
        return cls(str(data.get('type') or 'Exception'), str(data.get('message') or ''),
                   data.get('traceback'))

    def __str__(self) -> str:
        return '%s: %s' % (self.type, self.message) if self.message else self.type

    def __repr__(self) -> str:
        return 'ErrorInfo(type=%r, message=%r)' % (self.type, self.message)


class Event:
    """One event from the bus: the wire keys as attributes (meta merged into the body).

    ``topic`` is the ZeroMQ topic it arrived on and ``replayed`` tells whether it came
    from the broker's ring rather than the live stream. ``signal``, ``task_name`` and the
    meta keys (``seq``, ``sseq``, ``epoch``, ``gap``) come from the topic and meta frames;
    the body map is decoded on the first access to any other key, so a handler that reads
    only those pays nothing for the body. A body that cannot be decoded (the broker checks
    every body, so only a non-conforming broker sends one) reads as an empty map and is
    logged.
    """

    __slots__ = ('signal', 'task_name', 'seq', 'sseq', 'epoch', 'gap', 'topic', 'replayed',
                 '_body', '_map')
    signal: str
    task_name: str
    seq: int
    sseq: int
    epoch: int
    gap: bool

    def __init__(self, data: Mapping[str, Any], topic: bytes = b'',
                 replayed: bool = False) -> None:
        self._map: dict[str, Any] | None = dict(data)
        self._body = b''
        self.topic = topic
        self.replayed = replayed
        for key in _FRAME_KEYS:
            if key in self._map:
                setattr(self, key, self._map[key])
        self.gap = self._map.get('gap', False)

    @classmethod
    def received(cls, signal: str, task_name: str, topic: bytes, seq: int, sseq: int,
                 epoch: int, gap: bool, body: bytes, replayed: bool = False) -> 'Event':
        """An event as it came off the wire: the body frame stays encoded until read."""
        event = cls.__new__(cls)
        event.signal, event.task_name, event.topic = signal, task_name, topic
        event.seq, event.sseq, event.epoch, event.gap = seq, sseq, epoch, gap
        event._body, event._map, event.replayed = body, None, replayed
        return event

    @classmethod
    def from_message(cls, message: EventMessage, replayed: bool = False) -> 'Event':
        """Build one from a decoded ``wire.EventMessage`` (meta merged into the body)."""
        meta = message.meta
        return cls.received(message.signal, message.task_name,
                            topic_for(message.signal, message.task_name), meta.seq,
                            meta.sseq, meta.epoch, meta.gap, message.body, replayed)

    def _data(self) -> dict[str, Any]:
        data = self._map
        if data is None:
            try:
                data = decode_body_frame(self._body)
            except WireError as exc:
                logger.warning('event seq %s: undecodable body read as empty: %s',
                               getattr(self, 'seq', None), exc)
                data = {}
            self._map, self._body = data, b''  # keep one copy, not both
        return data

    def body_frame(self) -> bytes:
        """The body as it travelled (a msgpack map without the meta keys): the frame
        itself while unread, packed again from the map once read or when built from one."""
        if self._map is None:
            return self._body
        return msgpack.packb({key: value for key, value in self._map.items()
                              if key not in _META_KEYS}, use_bin_type=True, default=repr)

    def __getattr__(self, key: str) -> Any:
        # Reached for body keys, and for frame keys an Event built from a map lacks.
        if key.startswith('__') or key in _PRIVATE:
            raise AttributeError(key)
        data = self._data()
        try:
            return data[key]
        except KeyError:
            if key in _OPTIONAL:
                return _OPTIONAL[key]
            raise AttributeError('event has no key %r (keys: %s)'
                                 % (key, ', '.join(sorted(self.to_dict())))) from None

    @property
    def id(self) -> str:
        """The task's id (``task_id``), as on a queue task."""
        return str(self._data().get('task_id', ''))

    @property
    def name(self) -> str:
        """The task's registry name ``module.function`` (``task_name``)."""
        name = getattr(self, 'task_name', '')
        return name if isinstance(name, str) else str(name)

    @property
    def error(self) -> ErrorInfo | None:
        """The event's exception as an ``ErrorInfo``, or ``None`` when it carries none."""
        return ErrorInfo.from_map(self._data().get('exc'))

    @property
    def time(self) -> datetime.datetime | None:
        """``ts`` as an aware UTC datetime, or ``None`` when the event has no usable ``ts``."""
        ts = self._data().get('ts')
        if not isinstance(ts, (int, float)):
            return None
        return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)

    def get(self, key: str, default: Any = None) -> Any:
        """The wire value under ``key``, or ``default``."""
        return self.to_dict().get(key, default) if key in _META_KEYS \
            else self._data().get(key, default)

    def keys(self) -> Iterator[str]:
        """The wire keys this event carries."""
        return iter(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """A copy of the merged wire map (the body's keys, then the meta's, which override
        the body's: ``gap`` is there only when the meta's is true)."""
        merged = dict(self._data())
        merged.pop('gap', None)
        for key in ('seq', 'sseq', 'epoch'):
            try:
                merged[key] = object.__getattribute__(self, key)  # the frame's, never the body's
            except AttributeError:
                pass
        if self.gap:
            merged['gap'] = True
        return merged

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.to_dict() == self.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return '<Event %s %s id=%s seq=%s>' % (
            getattr(self, 'signal', None), getattr(self, 'task_name', None),
            self._data().get('task_id'), getattr(self, 'seq', None))
