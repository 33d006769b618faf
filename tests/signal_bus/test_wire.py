"""The wire codec: round trips, strict validation, and fuzzed input that only ever
raises ``WireError``."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from queue_core.signals import ALL_SIGNALS
from signal_bus import wire
from signal_bus.exceptions import BusError, WireError

signals = st.sampled_from(ALL_SIGNALS)
u64 = st.integers(min_value=0, max_value=2 ** 64 - 1)
positive = st.integers(min_value=1, max_value=2 ** 64 - 1)
names = st.text(max_size=40)
plain = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


def packb(value):
    return msgpack.packb(value, use_bin_type=True)


# -- round trips -------------------------------------------------------------------------

@given(signals, names, names, st.none() | u64, u64, positive)
def test_header_round_trips(signal, task_name, task_id, tseq, pub, pseq):
    frame = wire.encode_header(signal, task_name, task_id, tseq, pub, pseq)
    assert wire.decode_header(frame) == wire.Header(signal, task_name, task_id, tseq, pub, pseq)


@given(st.dictionaries(st.text(max_size=10), plain, max_size=8), st.booleans(),
       st.text(max_size=10), st.integers(0, 2 ** 31))
def test_check_body_accepts_any_map_and_peeks_final_host_pid(body, final, host, pid):
    body.update(final=final, host=host, pid=pid)
    info = wire.check_body(wire.encode_body(body))
    assert info == wire.BodyInfo(final, host, pid)
    assert wire.decode_body(wire.encode_body(body)) == body


@given(signals, names, positive, positive, u64, st.booleans(),
       st.dictionaries(st.text(max_size=10), plain, max_size=5))
@example('enqueued', '', 1, 1, 0, False, {'gap': None})  # a body with a meta key in it
def test_event_message_round_trips(signal, task_name, seq, sseq, epoch, gap, body):
    meta = wire.EventMeta(seq, sseq, epoch, gap)
    body_frame = wire.encode_body(body)
    frames = wire.encode_event_message(wire.topic_for(signal, task_name), meta, body_frame)
    message = wire.decode_message(frames)
    assert message == wire.EventMessage(signal, task_name, meta, body_frame)
    merged = message.as_map()
    assert merged['seq'] == seq and merged['sseq'] == sseq and merged['epoch'] == epoch
    assert merged.get('gap', False) is gap


def test_meta_omits_gap_unless_true():
    assert msgpack.unpackb(wire.encode_meta(wire.EventMeta(1, 1, 7))) == {
        'seq': 1, 'sseq': 1, 'epoch': 7}
    assert msgpack.unpackb(wire.encode_meta(wire.EventMeta(1, 1, 7, True)))['gap'] is True


def test_topic_prefix_selects_one_signal():
    topic = wire.topic_for('error', 'app.tasks.add')
    assert topic == b'error\x00app.tasks.add'
    assert topic.startswith(wire.signal_prefix('error'))
    assert not wire.topic_for('executing', 'x').startswith(wire.signal_prefix('error'))
    assert wire.parse_topic(topic) == ('error', 'app.tasks.add')


@given(u64, st.integers(0, 2 ** 40), st.dictionaries(signals, positive), st.floats(0, 2e9))
def test_heartbeat_round_trips(epoch, last_seq, last_sseq, ts):
    message = wire.decode_message(wire.encode_heartbeat(epoch, last_seq, last_sseq, ts))
    assert message == wire.MetaMessage('_heartbeat', {
        'v': 1, 'epoch': epoch, 'last_seq': last_seq, 'last_sseq': last_sseq, 'ts': ts})


@given(u64, st.none() | names, st.none() | st.integers(0, 2 ** 31), positive, positive,
       positive)
def test_loss_round_trips(pub, host, pid, count, first, last):
    message = wire.decode_message(wire.encode_loss(pub, host, pid, count, first, last))
    assert message.topic == '_loss'
    assert message.data == {'v': 1, 'pub': pub, 'host': host, 'pid': pid, 'count': count,
                            'first_pseq': first, 'last_pseq': last}


def test_control_requests_round_trip_and_limit_is_capped():
    assert wire.decode_request(wire.encode_stats_request()) == 'stats'
    assert wire.decode_request(wire.encode_replay_request(5, 9, 3)) == wire.ReplayRequest(5, 9, 3)
    assert wire.decode_request(wire.encode_replay_request(5)) == wire.ReplayRequest(5, None, 1000)
    assert wire.decode_request(packb({'op': 'replay', 'from': 1, 'limit': 50000})).limit == 1000


def test_control_replies_round_trip():
    stats = wire.decode_control_reply(wire.encode_stats_reply({'received': 3}))
    assert stats == wire.ControlReply('stats', {'received': 3})
    meta = wire.encode_meta(wire.EventMeta(4, 2, 9))
    body = wire.encode_body({'signal': 'complete'})
    event = wire.decode_control_reply(wire.encode_replay_event(b'complete\x00t', meta, body))
    assert event.kind == 'event' and event.event.meta.seq == 4 and event.event.body == body
    end = wire.decode_control_reply(wire.encode_replay_end(4, 5, 0, to=4))
    assert end == wire.ControlReply('end', {'from': 4, 'next': 5, 'missing': 0, 'to': 4})
    error = wire.decode_control_reply(wire.encode_error_reply('bad'))
    assert error == wire.ControlReply('error', {'error': 'bad'})


# -- strict validation -------------------------------------------------------------------

GOOD = [1, 'complete', 'app.add', 'id-1', 3, 12345, 1]


@pytest.mark.parametrize('index,value', [
    (0, 2), (0, True), (0, 1.0), (0, '1'),
    (1, 'completed'), (1, b'complete'), (1, None), (1, ['complete']),
    (2, b'app.add'), (2, None), (3, 7), (3, None),
    (4, -1), (4, 1.5), (4, '3'), (4, True), (4, -2 ** 63),
    (5, -1), (5, -2 ** 63), (5, None), (5, 'x'),
    (6, 0), (6, None), (6, -3), (6, 2.0),
])
@pytest.mark.parametrize('decode', [wire.decode_header, wire.decode_header_fast])
def test_decode_header_rejects_wrong_values(index, value, decode):
    header = list(GOOD)
    header[index] = value
    with pytest.raises(WireError):
        decode(packb(header))


@pytest.mark.parametrize('decode', [wire.decode_header, wire.decode_header_fast])
@pytest.mark.parametrize('value', [GOOD[:6], GOOD + [1], {'v': 1}, 'text', None, 1])
def test_decode_header_rejects_wrong_shapes(value, decode):
    with pytest.raises(WireError):
        decode(packb(value))


@pytest.mark.parametrize('decode', [wire.decode_header, wire.decode_header_fast])
def test_decode_header_accepts_nil_tseq_and_max_pub(decode):
    header = list(GOOD)
    header[4], header[5] = None, 2 ** 64 - 1
    assert decode(packb(header)).pub == 2 ** 64 - 1


@given(st.binary(max_size=120) | st.lists(plain, max_size=8).map(packb))
def test_the_broker_header_path_agrees_with_the_strict_decoder(frame):
    try:
        expected = wire.decode_header(frame)
    except WireError:
        with pytest.raises(WireError):
            wire.decode_header_fast(frame)
    else:
        assert wire.decode_header_fast(frame) == expected


@pytest.mark.parametrize('frame', [
    packb([1, 2]), packb('map'), packb(None), packb({'a': 1}) + b'\x00', packb({'a': 1})[:-1],
    b'', b'\xc1', '\x80',
])
def test_check_body_rejects_what_is_not_exactly_one_map(frame):
    with pytest.raises(WireError):
        wire.check_body(frame)
    checker = wire.BodyChecker()
    with pytest.raises(WireError):
        checker.check(frame)
    # the reused decoder is not left holding the bad bytes
    assert checker.check(packb({'final': True})) is True


@given(st.lists(st.binary(max_size=60) | st.dictionaries(st.text(max_size=8), plain,
                                                         max_size=5).map(packb),
                max_size=20))
def test_the_broker_body_check_agrees_with_the_strict_one_frame_after_frame(frames):
    checker = wire.BodyChecker()
    for frame in frames:
        try:
            info = wire.check_body(frame)
        except WireError:
            with pytest.raises(WireError):
                checker.check(frame)
        else:
            # final is read from the bytes: a map that says final: true is seen as final
            # (a value that happens to hold those bytes may be too, which costs only early
            # forgetting of the task's ordering state)
            assert checker.check(frame) or not info.final


def test_wire_error_is_under_the_package_root():
    assert issubclass(WireError, BusError) and issubclass(WireError, ValueError)


def test_decode_message_rejects_unknown_signal_and_bad_meta():
    body = wire.encode_body({})
    with pytest.raises(WireError):
        wire.decode_message([b'nope\x00t', wire.encode_meta(wire.EventMeta(1, 1, 1)), body])
    with pytest.raises(WireError):
        wire.decode_message([b'error\x00t', packb({'seq': 0, 'sseq': 1, 'epoch': 1}), body])
    with pytest.raises(WireError):
        wire.decode_message([b'error\x00t', packb({'seq': 1, 'sseq': 1, 'epoch': 1,
                                                  'gap': 1}), body])
    with pytest.raises(WireError):
        wire.decode_message([b'error-no-separator', wire.encode_meta(wire.EventMeta(1, 1, 1)),
                             body])


@pytest.mark.parametrize('request_map', [
    {'op': 'nope'}, {}, {'op': 'replay'}, {'op': 'replay', 'from': -1},
    {'op': 'replay', 'from': 1, 'to': 'x'}, {'op': 'replay', 'from': 1, 'limit': 0},
])
def test_decode_request_rejects_bad_requests(request_map):
    with pytest.raises(WireError):
        wire.decode_request(packb(request_map))


# -- fuzzing: nothing but WireError ------------------------------------------------------

def _decoders():
    return [
        wire.decode_header, wire.check_body, wire.decode_body, wire.decode_meta,
        wire.decode_request, wire.parse_topic,
        lambda frame: wire.decode_message([frame]),
        lambda frame: wire.decode_message([b'_heartbeat', frame]),
        lambda frame: wire.decode_message([b'_loss', frame]),
        lambda frame: wire.decode_message([b'error\x00t', frame, frame]),
        lambda frame: wire.decode_control_reply([frame]),
        lambda frame: wire.decode_control_reply([b'end', frame]),
        lambda frame: wire.decode_control_reply([b'event', frame, frame, frame]),
    ]


def _only_wire_errors(frame):
    for decode in _decoders():
        try:
            decode(frame)
        except WireError:
            pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_wire_error(frame):
    _only_wire_errors(frame)


@settings(max_examples=200)
@given(plain)
def test_wrong_typed_msgpack_values_raise_only_wire_error(value):
    _only_wire_errors(packb(value))


@settings(max_examples=200)
@given(signals, names, names, st.none() | u64, u64, positive, st.data())
def test_truncated_frames_raise_only_wire_error(signal, name, task_id, tseq, pub, pseq, data):
    frame = wire.encode_header(signal, name, task_id, tseq, pub, pseq)
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(WireError):
        wire.decode_header(frame[:cut])
    _only_wire_errors(frame[:cut])


@pytest.mark.parametrize('frame', [
    b'\x91' * 100_000 + b'\x01',                      # nesting far deeper than any stack
    b'\x81\xa1a' * 50_000 + b'\x01',                  # deeply nested maps
    b'\xdd\xff\xff\xff\xff',                          # array claiming 4 billion items
    b'\xdf\xff\xff\xff\xff',                          # map claiming 4 billion pairs
    b'\xdb\xff\xff\xff\xff' + b'x' * 10,              # str claiming 4 GiB
    b'\xc6\xff\xff\xff\xff',                          # bin claiming 4 GiB
    b'\xc9\xff\xff\xff\xff\x05',                      # ext claiming 4 GiB
    b'\xd6\xff\x00\x00',                              # truncated timestamp ext
    packb({'a': 1}) * 2,                              # two maps
])
def test_hostile_frames_raise_only_wire_error(frame):
    _only_wire_errors(frame)


@pytest.mark.parametrize('frames', [
    [], [b''], [b'a', b'b', b'c', b'd'], None, 'text', [1, 2, 3], [b'_loss', 5],
    [b'error\x00t', None, b'\x80'], (b'_heartbeat',),
])
def test_wrong_frame_lists_raise_only_wire_error(frames):
    for decode in (wire.decode_message, wire.decode_control_reply, wire.decode_meta_message):
        with pytest.raises(WireError):
            decode(frames)
