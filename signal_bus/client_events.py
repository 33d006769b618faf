"""What a subscriber hands to user code (``Event``, ``ErrorInfo``) and how it keeps count
of the broker's numbering (``SequenceTracker``).

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
from .wire import EventMessage, EventMeta, decode_body_frame, topic_for

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
        """A copy of the merged wire map (the body's keys, then the meta's)."""
        merged = dict(self._data())
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


Loss = tuple[int, int, int]
"""A loss found in the numbering: ``(count, first_seq, last_seq)``."""


class SequenceTracker:
    """Follows the broker's numbering of one subscriber's stream and finds holes in it.

    Unfiltered, a stream is numbered by ``seq``; filtered by signal, each signal is its
    own stream numbered by ``sseq``. For each stream it keeps the last number accounted
    for and the global ``seq`` up to which that is known, which is where a replay of
    missing events has to start. Pure bookkeeping: it asks nothing of any socket.
    """

    def __init__(self, signals: tuple[str, ...] | None = None) -> None:
        self.signals = signals
        self.epoch: int | None = None
        self._state: dict[str | None, list[int]] = {}
        # After a broker restart numbering starts at 1 again, and everything the new
        # broker released before we noticed it is to be fetched from its ring.
        self._from_zero = False

    def _key(self, signal: str) -> str | None:
        return signal if self.signals is not None else None

    def _number(self, meta: EventMeta) -> int:
        return meta.sseq if self.signals is not None else meta.seq

    def wants(self, signal: str) -> bool:
        """Whether events of ``signal`` belong to this stream at all."""
        return self.signals is None or signal in self.signals

    def change_epoch(self, epoch: int) -> bool:
        """Note the epoch of what arrived; True when it differs from a known one."""
        if self.epoch == epoch:
            return False
        restarted = self.epoch is not None
        self.epoch = epoch
        if restarted:
            self._state.clear()
            self._from_zero = True
        return restarted

    def _position(self, key: str | None, meta: EventMeta) -> list[int]:
        state = self._state.get(key)
        if state is None:
            if self._from_zero:
                state = [0, 0]
            else:
                state = [self._number(meta) - 1, meta.seq - 1]
            self._state[key] = state
        return state

    def missing_before(self, signal: str, meta: EventMeta) -> tuple[int, int] | None:
        """The global ``seq`` range to replay before this event, or None when none is due."""
        last, known_to = self._position(self._key(signal), meta)
        if self._number(meta) > last + 1 and meta.seq - 1 > known_to:
            return known_to + 1, meta.seq - 1
        return None

    def accept(self, signal: str, meta: EventMeta) -> tuple[bool, Loss | None]:
        """Account for an event: (is it new, the loss its number reveals, if any)."""
        state = self._position(self._key(signal), meta)
        number = self._number(meta)
        if number <= state[0]:
            return False, None
        loss = None
        if number > state[0] + 1:
            loss = (number - state[0] - 1, state[1] + 1, meta.seq - 1)
        state[0], state[1] = number, meta.seq
        return True, loss

    def take_next(self, signal: str, seq: int, sseq: int) -> bool:
        """The common case in one step: when the event is exactly the next of a stream
        already under way, account for it and return True; otherwise change nothing and
        return False (``missing_before`` and ``accept`` then decide)."""
        filtered = self.signals is not None
        state = self._state.get(signal if filtered else None)
        number = sseq if filtered else seq
        if state is None or number != state[0] + 1:
            return False
        state[0], state[1] = number, seq
        return True

    def _targets(self, heartbeat: Mapping[str, Any]) -> dict[str | None, int]:
        if self.signals is None:
            return {None: int(heartbeat['last_seq'])}
        last_sseq = heartbeat.get('last_sseq') or {}
        return {signal: int(last_sseq.get(signal, 0)) for signal in self.signals}

    def behind(self, heartbeat: Mapping[str, Any]) -> tuple[int, int] | None:
        """The global range to replay so every stream reaches the heartbeat's numbers."""
        last_seq = int(heartbeat['last_seq'])
        starts = []
        for key, target in self._targets(heartbeat).items():
            state = self._state.get(key)
            if state is None and not self._from_zero:
                self._state[key] = [target, last_seq]
                continue
            state = self._state.setdefault(key, [0, 0])
            if target > state[0] and last_seq > state[1]:
                starts.append(state[1] + 1)
        return (min(starts), last_seq) if starts else None

    def settle(self, heartbeat: Mapping[str, Any]) -> list[Loss]:
        """After any replay: what is still behind the heartbeat is lost; move every
        stream up to the heartbeat's position."""
        last_seq = int(heartbeat['last_seq'])
        losses = []
        for key, target in self._targets(heartbeat).items():
            state = self._state.setdefault(key, [0, 0])
            if target > state[0]:
                losses.append((target - state[0], state[1] + 1, last_seq))
                state[0] = target
            state[1] = max(state[1], last_seq)
        return losses

    def position(self) -> int:
        """The highest global ``seq`` this stream has accounted for (0 before any)."""
        return max((state[1] for state in self._state.values()), default=0)


class SilenceWatch:
    """When the broker was last heard, and whether its silence has been reported.

    Pure bookkeeping: the caller passes the clock (``time.monotonic()`` seconds).
    """

    def __init__(self, after: float, now: float) -> None:
        self.after = after
        self.silent = False
        self._last_heard = now

    def heard(self, now: float) -> float | None:
        """Note a message from the broker; the length of the silence it ends, if any."""
        ended = now - self._last_heard if self.silent else None
        self.silent = False
        self._last_heard = now
        return ended

    def check(self, now: float) -> float | None:
        """Nothing arrived: how long it has been quiet, when a silence begins now."""
        quiet = now - self._last_heard
        if self.silent or quiet < self.after:
            return None
        self.silent = True
        return quiet
