"""Property tests of the msgpack serializer: exact round trips, and only clean failures."""
from __future__ import annotations

import datetime
from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from queue_core.exceptions import SerializationError
from queue_core.serializer import MsgpackSerializer
from queue_core.values import SKIPPED

# No example database: the tests must not write into the work tree.
FAST = settings(deadline=None, database=None, max_examples=150)

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes)))
hashable_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2 ** 63, max_value=2 ** 64 - 1),
    st.floats(allow_nan=False), st.text(), st.binary(),
    st.datetimes(), st.datetimes(timezones=offsets), st.dates(), st.timedeltas(),
    st.just(SKIPPED),
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.one_of(st.tuples(inner), st.lists(inner, max_size=3).map(tuple),
                            st.frozensets(inner, max_size=3)),
    max_leaves=6)
values = st.recursive(
    hashables,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4)),
    max_leaves=20)


def tagged(value: Any) -> Any:
    """A hashable description of ``value`` that tells apart types equality would merge.

    ``1``, ``1.0`` and ``True`` are equal in Python, ``[1]`` and ``(1,)`` are not distinct
    enough for a serializer test; aware datetimes are compared with their offsets.
    """
    kind = type(value).__name__
    if isinstance(value, (list, tuple)):
        return kind, tuple(tagged(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return kind, frozenset(tagged(item) for item in value)
    if isinstance(value, dict):
        return kind, frozenset((tagged(k), tagged(v)) for k, v in value.items())
    if isinstance(value, (float, datetime.datetime)):
        return kind, repr(value) if isinstance(value, float) else value.isoformat()
    return kind, value


@FAST
@given(values)
def test_every_supported_value_round_trips_with_its_types(value):
    serializer = MsgpackSerializer()
    result = serializer.deserialize(serializer.serialize(value))
    assert result == value
    assert tagged(result) == tagged(value)


@FAST
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_only_serialization_error(data):
    try:
        MsgpackSerializer().deserialize(data)
    except SerializationError:
        pass


ext_payloads = st.one_of(
    st.binary(max_size=40),
    st.recursive(st.one_of(st.none(), st.integers(-2 ** 63, 2 ** 64 - 1), st.floats(),
                           st.text(max_size=5), st.binary(max_size=5)),
                 lambda inner: st.lists(inner, max_size=9) | st.dictionaries(
                     st.text(max_size=5), inner, max_size=3),
                 max_leaves=12).map(msgpack.packb),
)


@FAST
@given(st.lists(st.builds(msgpack.ExtType, st.integers(0, 12), ext_payloads), max_size=3))
def test_forged_extension_values_decode_or_raise_only_serialization_error(exts):
    # Well-formed msgpack whose extension payloads are wrong reaches every ext decoder.
    data = msgpack.packb(exts)
    try:
        MsgpackSerializer().deserialize(data)
    except SerializationError:
        pass


class Opaque:
    pass


@FAST
@given(st.recursive(st.one_of(hashable_leaves, st.builds(Opaque), st.integers()),
                    lambda inner: st.lists(inner, max_size=3) | st.lists(
                        inner, max_size=3).map(tuple), max_leaves=8))
def test_serialize_succeeds_or_raises_only_serialization_error(value):
    try:
        MsgpackSerializer().serialize(value)
    except SerializationError:
        pass
