"""The bus wire format, version 1: pure functions from values to frames and back.

Publisher -> broker (PUSH -> PULL): ``[header, body]``.
  header: msgpack array ``[v, signal, task_name, task_id, tseq, pub, pseq]``.
  body: a msgpack map, forwarded by the broker byte for byte.
Broker -> subscribers (XPUB -> SUB): ``[topic, meta, body]`` for an event, where topic is
``"<signal>\\x00<task name>"`` and meta ``{seq, sseq, epoch[, gap: true]}``; ``[topic, map]``
for a meta topic (``_heartbeat``, ``_loss``).
Control (ROUTER; clients use DEALER): a request is one msgpack map with ``op``; see
``docs/bus-wire.md`` for the replies.

Every decoder raises ``WireError`` and nothing else for malformed input.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import msgpack

from queue_core.signals import ALL_SIGNALS

from .exceptions import WireError

WIRE_VERSION = 1
U64_MAX = 2 ** 64 - 1
TOPIC_SEPARATOR = b'\x00'
META_PREFIX = b'_'
HEARTBEAT_TOPIC = b'_heartbeat'
LOSS_TOPIC = b'_loss'
CONSUMER_TOPIC = b'_consumer'
#: The most ``[header, body]`` pairs one ingest message may carry (DESIGN, "Batches").
MAX_BATCH_EVENTS = 64
#: Control requests over this size get an error reply.
MAX_REQUEST_BYTES = 64 * 1024
#: The largest page a replay request may ask for.
MAX_REPLAY_LIMIT = 1000
OP_STATS = 'stats'
OP_REPLAY = 'replay'
REPLY_EVENT = b'event'
REPLY_END = b'end'
REPLY_ERROR = b'error'

_KNOWN_SIGNALS = frozenset(ALL_SIGNALS)


class Header(NamedTuple):
    """The publisher's header frame, decoded (``v`` is always ``WIRE_VERSION``)."""

    signal: str
    task_name: str
    task_id: str
    tseq: int | None
    pub: int
    pseq: int


class BodyInfo(NamedTuple):
    """What the broker learns from a body while checking it: ``final``, ``host``, ``pid``."""

    final: bool
    host: str | None
    pid: int | None


class EventMeta(NamedTuple):
    """The broker's numbering of a released event."""

    seq: int
    sseq: int
    epoch: int
    gap: bool = False

    def as_map(self) -> dict[str, Any]:
        """The wire map: ``gap`` appears only when true."""
        data: dict[str, Any] = {'seq': self.seq, 'sseq': self.sseq, 'epoch': self.epoch}
        if self.gap:
            data['gap'] = True
        return data


class EventMessage(NamedTuple):
    """An event as a subscriber receives it; ``body`` stays encoded until asked for."""

    signal: str
    task_name: str
    meta: EventMeta
    body: bytes

    def as_map(self) -> dict[str, Any]:
        """The body map with the meta keys merged in (what a plain client sees)."""
        return merge_event(self.meta, decode_body(self.body))


class MetaMessage(NamedTuple):
    """A meta-topic message (``_heartbeat``, ``_loss``, or a future ``_*`` topic)."""

    topic: str
    data: dict[str, Any]


class ReplayRequest(NamedTuple):
    """A decoded ``replay`` request; ``to_seq`` None means up to the broker's last event."""

    from_seq: int
    to_seq: int | None
    limit: int


class ControlReply(NamedTuple):
    """One control reply message: ``kind`` is ``stats``, ``event``, ``end`` or ``error``.

    ``data`` is the map (stats, end, error); ``event`` is set for ``event`` replies.
    """

    kind: str
    data: dict[str, Any]
    event: EventMessage | None = None


# -- small checks ------------------------------------------------------------------------

def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(frame: Any, what: str) -> Any:
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise WireError('%s must be bytes, got %s' % (what, type(frame).__name__))
    try:
        return msgpack.unpackb(bytes(frame), raw=False, strict_map_key=False)
    except Exception as exc:
        raise WireError('%s is not valid msgpack: %s' % (what, exc)) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_uint(value: Any, what: str, minimum: int = 0) -> int:
    if not _is_int(value) or not minimum <= value <= U64_MAX:
        raise WireError('%s must be an integer in [%d, 2**64-1], got %r'
                        % (what, minimum, value))
    return value


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise WireError('%s must be a string, got %s' % (what, type(value).__name__))
    return value


def is_signal(value: Any) -> bool:
    """True for the name of one of the thirteen signals."""
    return isinstance(value, str) and value in _KNOWN_SIGNALS


def _require_signal(value: Any) -> str:
    if not is_signal(value):
        raise WireError('unknown signal %r; expected one of %s'
                        % (value, ', '.join(ALL_SIGNALS)))
    return value


def _require_map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireError('%s must be a msgpack map, got %s' % (what, type(value).__name__))
    return value


def _require_frames(frames: Any, count: int, what: str) -> Sequence[bytes]:
    if not isinstance(frames, (list, tuple)) or len(frames) != count:
        size = len(frames) if isinstance(frames, (list, tuple)) else type(frames).__name__
        raise WireError('%s must have %d frames, got %s' % (what, count, size))
    for frame in frames:
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            raise WireError('%s frames must be bytes, got %s' % (what, type(frame).__name__))
    return frames


# -- publisher -> broker -----------------------------------------------------------------

def encode_header(signal: str, task_name: str, task_id: str, tseq: int | None,
                  pub: int, pseq: int) -> bytes:
    """The header frame ``[1, signal, task_name, task_id, tseq, pub, pseq]``."""
    return _pack([WIRE_VERSION, signal, task_name, task_id, tseq, pub, pseq])


def decode_header(frame: bytes) -> Header:
    """Decode and strictly validate a header frame; ``WireError`` if anything is off."""
    value = _unpack(frame, 'header')
    if not isinstance(value, list) or len(value) != 7:
        raise WireError('header must be a msgpack array of 7 items '
                        '[v, signal, task_name, task_id, tseq, pub, pseq], got %r'
                        % (type(value).__name__ if not isinstance(value, list) else value,))
    version, signal, task_name, task_id, tseq, pub, pseq = value
    if version != WIRE_VERSION or not _is_int(version):
        raise WireError('unsupported wire version %r; this side speaks version %d'
                        % (version, WIRE_VERSION))
    return Header(
        signal=_require_signal(signal),
        task_name=_require_str(task_name, 'task_name'),
        task_id=_require_str(task_id, 'task_id'),
        tseq=None if tseq is None else _require_uint(tseq, 'tseq'),
        pub=_require_uint(pub, 'pub'),
        pseq=_require_uint(pseq, 'pseq', minimum=1),
    )


_unpack_fast = msgpack.unpackb
#: First bytes of a msgpack map: fixmap, map 16, map 32.
_MAP_MARKERS = frozenset(range(0x80, 0x90)) | {0xde, 0xdf}
_FINAL_TRUE = b'\xa5final\xc3'


def decode_header_fast(frame: bytes) -> Header:
    """``decode_header`` for the broker's per-event path: the same checks, in one
    expression for a well-formed header; anything unusual goes the long way, so the
    error says what was wrong."""
    try:
        value = _unpack_fast(frame)
    except Exception:
        return decode_header(frame)
    if type(value) is list and len(value) == 7:
        version, signal, task_name, task_id, tseq, pub, pseq = value
        if (version == 1 and type(version) is int and type(signal) is str
                and signal in _KNOWN_SIGNALS
                and type(task_name) is str and type(task_id) is str
                and (tseq is None or type(tseq) is int and 0 <= tseq <= U64_MAX)
                and type(pub) is int and 0 <= pub <= U64_MAX
                and type(pseq) is int and 1 <= pseq <= U64_MAX):
            return _new_header(Header, (signal, task_name, task_id, tseq, pub, pseq))
    return decode_header(frame)


_new_header = tuple.__new__


class BodyChecker:
    """Checks that a body frame is exactly one msgpack map without building it, with one
    reused decoder (making one per body cost more than the check); says whether the body
    has ``final: true`` (read from its bytes, as every publisher writes it: a body that
    spells it otherwise only keeps its task's ordering state longer, and one whose values
    happen to hold those bytes only has it forgotten sooner, which the sequencer's memory
    of forgotten tasks covers)."""

    def __init__(self) -> None:
        self._unpacker = self._fresh()

    @staticmethod
    def _fresh() -> msgpack.Unpacker:
        return msgpack.Unpacker(max_buffer_size=64 * 1024 * 1024)

    def check(self, frame: bytes) -> bool:
        """``WireError`` unless ``frame`` is one whole map; whether it is final."""
        if not frame or frame[0] not in _MAP_MARKERS:
            raise WireError('body must be a msgpack map')
        unpacker = self._unpacker
        start = unpacker.tell()
        unpacker.feed(frame)
        try:
            unpacker.skip()
        except Exception as exc:
            self._unpacker = self._fresh()  # what was fed is still buffered: start anew
            raise WireError('body is not valid msgpack: %s' % (exc,)) from None
        used = unpacker.tell() - start
        if used != len(frame):
            self._unpacker = self._fresh()
            raise WireError('body has %d bytes after its map' % (len(frame) - used))
        return _FINAL_TRUE in frame


def decode_consumer_meta(frame: bytes) -> dict[str, Any]:
    """The map of a consumer's one-frame ``_consumer`` message (SPEC §7)."""
    return _require_map(_unpack(frame, '_consumer map'), '_consumer map')


def saturate(value: Any) -> Any:
    """``value`` with every integer clamped to the wire's unsigned 64-bit range."""
    if isinstance(value, dict):
        return {key: saturate(item) for key, item in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, -2 ** 63), U64_MAX)
    return value


def encode_body(body: dict[str, Any]) -> bytes:
    """Pack a body map built of plain msgpack values (see ``signal_bus.body``)."""
    return _pack(body)


def check_body(frame: bytes) -> BodyInfo:
    """Check that ``frame`` is exactly one msgpack map; it is decoded, never re-encoded.

    Returns the ``final``, ``host`` and ``pid`` values the broker needs from it.
    """
    data = _unpack(frame, 'body')
    if not isinstance(data, dict):
        raise WireError('body must be a msgpack map, got %s' % type(data).__name__)
    host, pid = data.get('host'), data.get('pid')
    return BodyInfo(final=data.get('final') is True,
                    host=host if isinstance(host, str) else None,
                    pid=pid if _is_int(pid) else None)


def decode_body(frame: bytes) -> dict[str, Any]:
    """Decode a body frame into its map."""
    return _require_map(_unpack(frame, 'body'), 'body')


# -- broker -> subscribers ---------------------------------------------------------------

def topic_for(signal: str, task_name: str) -> bytes:
    """The topic frame ``"<signal>\\x00<task name>"`` in UTF-8."""
    return signal.encode() + TOPIC_SEPARATOR + task_name.encode()


def signal_prefix(signal: str) -> bytes:
    """The ZeroMQ subscription prefix selecting one signal (``b"error\\x00"``)."""
    return signal.encode() + TOPIC_SEPARATOR


def parse_topic(frame: bytes) -> tuple[str, str]:
    """Split an event topic into ``(signal, task_name)``."""
    try:
        signal, separator, task_name = bytes(frame).decode().partition('\x00')
    except Exception:
        raise WireError('topic is not UTF-8: %r' % (bytes(frame)[:60],)) from None
    if not separator:
        raise WireError('topic %r has no NUL separator' % (bytes(frame)[:60],))
    return _require_signal(signal), task_name


def encode_meta(meta: EventMeta) -> bytes:
    """The meta frame of an event."""
    return encode_meta_fields(*meta)


def encode_meta_fields(seq: int, sseq: int, epoch: int, gap: bool = False) -> bytes:
    """The meta frame from its fields (the broker's hot path: no intermediate tuple)."""
    if gap:
        return _pack({'seq': seq, 'sseq': sseq, 'epoch': epoch, 'gap': True})
    return _pack({'seq': seq, 'sseq': sseq, 'epoch': epoch})


def decode_meta(frame: bytes) -> EventMeta:
    """Decode and validate an event's meta frame."""
    data = _require_map(_unpack(frame, 'meta'), 'meta')
    gap = data.get('gap', False)
    if not isinstance(gap, bool):
        raise WireError('meta gap must be a boolean, got %r' % (gap,))
    return EventMeta(seq=_require_uint(data.get('seq'), 'meta seq', minimum=1),
                     sseq=_require_uint(data.get('sseq'), 'meta sseq', minimum=1),
                     epoch=_require_uint(data.get('epoch'), 'meta epoch'),
                     gap=gap)


def decode_meta_fields(frame: bytes) -> tuple[int, int, int, bool]:
    """``decode_meta`` as a plain ``(seq, sseq, epoch, gap)`` tuple, with the same checks
    in fewer steps (a subscriber's hot path); ``WireError`` from ``decode_meta`` otherwise."""
    try:
        data = msgpack.unpackb(frame)
        seq, sseq, epoch, gap = data['seq'], data['sseq'], data['epoch'], data.get('gap', False)
    except Exception:
        return tuple(decode_meta(frame))  # type: ignore[return-value]
    if type(seq) is int and type(sseq) is int and type(epoch) is int and type(gap) is bool \
            and 0 < seq <= U64_MAX and 0 < sseq <= U64_MAX and 0 <= epoch <= U64_MAX:
        return seq, sseq, epoch, gap
    return tuple(decode_meta(frame))  # type: ignore[return-value]


def decode_body_frame(frame: bytes) -> dict[str, Any]:
    """``decode_body`` in one step for a received ``bytes`` frame (a subscriber reading a
    body lazily): the same map, or the same ``WireError``."""
    try:
        data = msgpack.unpackb(frame, strict_map_key=False)
    except Exception:
        return decode_body(frame)
    return data if type(data) is dict else decode_body(frame)


def is_map_frame(frame: bytes) -> bool:
    """Whether ``frame`` starts like a msgpack map (the cheap check a lazy reader makes)."""
    first = frame[0] if frame else 0
    return 0x80 <= first <= 0x8f or first == 0xde or first == 0xdf


def encode_event_message(topic: bytes, meta: EventMeta, body: bytes) -> list[bytes]:
    """The three frames an event travels in to subscribers."""
    return [topic, encode_meta(meta), body]


def encode_heartbeat(epoch: int, last_seq: int, last_sseq: dict[str, int],
                     ts: float, batch: bool = False) -> list[bytes]:
    """``[b"_heartbeat", {v, epoch, last_seq, last_sseq, ts[, batch: true]}]``; ``batch``
    announces a broker that takes ingest batches. Counts saturate at 2**64-1."""
    data = {'v': WIRE_VERSION, 'epoch': epoch, 'last_seq': last_seq,
            'last_sseq': saturate(dict(last_sseq)), 'ts': ts}
    if batch:
        data['batch'] = True
    return [HEARTBEAT_TOPIC, _pack(data)]


def encode_loss(pub: int, host: str | None, pid: int | None, count: int,
                first_pseq: int, last_pseq: int) -> list[bytes]:
    """``[b"_loss", {v, pub, host, pid, count, first_pseq, last_pseq}]``."""
    return [LOSS_TOPIC, _pack({'v': WIRE_VERSION, 'pub': pub, 'host': host, 'pid': pid,
                               'count': count, 'first_pseq': first_pseq,
                               'last_pseq': last_pseq})]


def _check_heartbeat(data: dict[str, Any]) -> None:
    _require_uint(data.get('epoch'), 'heartbeat epoch')
    _require_uint(data.get('last_seq'), 'heartbeat last_seq')
    last_sseq = _require_map(data.get('last_sseq'), 'heartbeat last_sseq')
    for signal, count in last_sseq.items():
        _require_str(signal, 'heartbeat last_sseq key')
        _require_uint(count, 'heartbeat last_sseq value')
    if not isinstance(data.get('ts'), (int, float)) or isinstance(data.get('ts'), bool):
        raise WireError('heartbeat ts must be a number, got %r' % (data.get('ts'),))


def _check_loss(data: dict[str, Any]) -> None:
    _require_uint(data.get('pub'), 'loss pub')
    _require_uint(data.get('count'), 'loss count', minimum=1)
    _require_uint(data.get('first_pseq'), 'loss first_pseq', minimum=1)
    _require_uint(data.get('last_pseq'), 'loss last_pseq', minimum=1)
    if data.get('host') is not None:
        _require_str(data.get('host'), 'loss host')
    if data.get('pid') is not None:
        _require_uint(data.get('pid'), 'loss pid')


def decode_meta_message(frames: Sequence[bytes]) -> MetaMessage:
    """Decode a two-frame meta-topic message; known topics are validated."""
    topic_frame, map_frame = _require_frames(frames, 2, 'meta message')
    try:
        topic = bytes(topic_frame).decode()
    except UnicodeDecodeError:
        raise WireError('meta topic is not UTF-8') from None
    if not topic.startswith('_'):
        raise WireError('meta topic %r does not start with "_"' % topic[:60])
    data = _require_map(_unpack(map_frame, topic + ' map'), topic + ' map')
    if topic in ('_heartbeat', '_loss'):
        if data.get('v') != WIRE_VERSION or not _is_int(data.get('v')):
            raise WireError('%s has unsupported version %r' % (topic, data.get('v')))
        (_check_heartbeat if topic == '_heartbeat' else _check_loss)(data)
    return MetaMessage(topic, data)


def decode_message(frames: Sequence[bytes]) -> EventMessage | MetaMessage:
    """Decode what a SUB socket received: an event (3 frames) or a meta message (2)."""
    if isinstance(frames, (list, tuple)) and frames and isinstance(
            frames[0], (bytes, bytearray, memoryview)) and bytes(frames[0][:1]) == META_PREFIX:
        return decode_meta_message(frames)
    topic, meta, body = _require_frames(frames, 3, 'event message')
    signal, task_name = parse_topic(topic)
    if not isinstance(_unpack(body, 'body'), dict):
        raise WireError('event body must be a msgpack map')
    return EventMessage(signal, task_name, decode_meta(meta), bytes(body))


# -- control socket ----------------------------------------------------------------------

def encode_stats_request() -> bytes:
    """The ``{"op": "stats"}`` request frame."""
    return _pack({'op': OP_STATS})


def encode_replay_request(from_seq: int, to_seq: int | None = None,
                          limit: int = MAX_REPLAY_LIMIT) -> bytes:
    """The ``{"op": "replay", "from": A, "to": B, "limit": L}`` request frame."""
    return _pack({'op': OP_REPLAY, 'from': from_seq, 'to': to_seq, 'limit': limit})


def decode_request(frame: bytes) -> str | ReplayRequest:
    """Decode a control request: ``"stats"`` or a ``ReplayRequest``."""
    data = _require_map(_unpack(frame, 'control request'), 'control request')
    op = data.get('op')
    if op == OP_STATS:
        return OP_STATS
    if op != OP_REPLAY:
        raise WireError('unknown control op %r; expected "stats" or "replay"' % (op,))
    from_seq = _require_uint(data.get('from'), 'replay from')
    to_seq = data.get('to')
    if to_seq is not None:
        _require_uint(to_seq, 'replay to')
    limit = data.get('limit', MAX_REPLAY_LIMIT)
    if limit is None:
        limit = MAX_REPLAY_LIMIT
    _require_uint(limit, 'replay limit', minimum=1)
    return ReplayRequest(from_seq, to_seq, min(limit, MAX_REPLAY_LIMIT))


def encode_stats_reply(stats: dict[str, Any]) -> list[bytes]:
    """The stats reply: one frame, a map."""
    return [_pack(stats)]


def encode_replay_event(topic: bytes, meta: bytes, body: bytes) -> list[bytes]:
    """One replayed event: ``[b"event", topic, meta, body]``."""
    return [REPLY_EVENT, topic, meta, body]


def encode_replay_end(from_seq: int, next_seq: int, missing: int,
                      **extra: Any) -> list[bytes]:
    """The end of a replay page: ``[b"end", {"from": A, "next": N, "missing": n, ...}]``."""
    data = {'from': from_seq, 'next': next_seq, 'missing': missing}
    data.update(extra)
    return [REPLY_END, _pack(data)]


def encode_error_reply(message: str) -> list[bytes]:
    """An error reply to a bad request: ``[b"error", {"error": message}]``."""
    return [REPLY_ERROR, _pack({'error': message})]


def decode_control_reply(frames: Sequence[bytes]) -> ControlReply:
    """Decode one reply message as a DEALER receives it."""
    if not isinstance(frames, (list, tuple)) or not frames:
        raise WireError('control reply must have at least one frame')
    kind = bytes(frames[0]) if isinstance(frames[0], (bytes, bytearray, memoryview)) else None
    if len(frames) == 1:
        return ControlReply('stats', _require_map(_unpack(frames[0], 'stats'), 'stats'))
    if kind == REPLY_EVENT:
        event = decode_message(list(frames[1:]))
        if not isinstance(event, EventMessage):
            raise WireError('replayed message is not an event')
        return ControlReply('event', {}, event)
    if kind in (REPLY_END, REPLY_ERROR):
        _require_frames(frames, 2, 'control reply')
        data = _require_map(_unpack(frames[1], kind.decode()), kind.decode())
        if kind == REPLY_END:
            for key in ('from', 'next', 'missing'):
                _require_uint(data.get(key), 'end ' + key)
        return ControlReply(kind.decode(), data)
    raise WireError('unknown control reply kind %r' % (kind,))


def merge_event(meta: EventMeta, body: dict[str, Any]) -> dict[str, Any]:
    """A plain client's view of an event: the body map with meta's keys merged in. The
    meta's keys are its own: a body that carries one is overridden, ``gap`` included
    (absent from the view when the meta's is false)."""
    merged = dict(body)
    merged.pop('gap', None)
    merged.update(meta.as_map())
    return merged
