"""The msgpack serializer: every supported type round-trips; anything else fails clearly."""
from __future__ import annotations

import collections
import datetime
import enum
import zoneinfo

import msgpack
import pytest

from queue_core import exceptions
from queue_core.serializer import (EXT_EXCEPTION, MsgpackSerializer, PickleSerializer,
                                   RemoteException, exception_to_map, qualified_name)
from queue_core.values import SKIPPED, Error


class Boom(Exception):
    """An application's own exception class."""


class Color(str, enum.Enum):
    RED = 'red'


class Level(enum.IntEnum):
    HIGH = 3


@pytest.fixture
def serializer():
    return MsgpackSerializer()


def round_trip(serializer, value):
    data = serializer.serialize(value)
    assert isinstance(data, bytes)
    return serializer.deserialize(data)


@pytest.mark.parametrize('value', [
    None, True, False, 0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1, 1.5, -0.0, '', 'héllo ✓',
    b'', b'\x00\xffbytes', [], {}, [1, [2, [3]]], {'a': {'b': [None]}},
], ids=repr)
def test_plain_values_round_trip(serializer, value):
    result = round_trip(serializer, value)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize('value', [
    datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
    datetime.datetime(1, 1, 1),
    datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime.date(2024, 2, 29),
    datetime.timedelta(0),
    datetime.timedelta(days=-3, seconds=5, microseconds=7),
    datetime.timedelta(days=999999999, seconds=86399, microseconds=999999),
    datetime.timedelta(days=-999999999),
], ids=repr)
def test_dates_and_durations_round_trip_exactly(serializer, value):
    result = round_trip(serializer, value)
    assert result == value
    assert type(result) is type(value)


def test_naive_datetime_stays_naive(serializer):
    assert round_trip(serializer, datetime.datetime(2030, 1, 1)).tzinfo is None


@pytest.mark.parametrize('tz', [
    datetime.timezone.utc,
    datetime.timezone(datetime.timedelta(hours=-9, minutes=-30)),
    zoneinfo.ZoneInfo('Europe/Paris'),
], ids=str)
def test_aware_datetime_keeps_its_instant_and_offset(serializer, tz):
    value = datetime.datetime(2021, 7, 4, 12, 30, 1, 5, tzinfo=tz)
    result = round_trip(serializer, value)
    assert result == value
    assert result.utcoffset() == value.utcoffset()
    assert result.replace(tzinfo=None) == value.replace(tzinfo=None)


def test_containers_keep_their_types_when_nested(serializer):
    value = {'outer': [(1, (2, 'x')), {3, 4}, frozenset({(5, 6)}), [b'raw', ()]]}
    result = round_trip(serializer, value)
    assert result == value
    outer = result['outer']
    assert type(outer) is list
    assert type(outer[0]) is tuple and type(outer[0][1]) is tuple
    assert type(outer[1]) is set
    assert type(outer[2]) is frozenset and type(next(iter(outer[2]))) is tuple
    assert type(outer[3][1]) is tuple


def test_non_string_keys_round_trip(serializer):
    value = {1: 'one', -2: 'minus two', (1, 2): 'pair', b'k': 'bytes', None: 0, 1.5: 'f'}
    assert round_trip(serializer, value) == value


def test_task_message_shape_round_trips(serializer):
    message = {'id': 'abc', 'name': 'app.add', 'args': (1, 2), 'kwargs': {'k': [1, {2}]},
               'eta': datetime.datetime(2030, 1, 1), 'retries': 2, 'retry_delay': 1.5,
               'expires': None, 'on_complete': None}
    assert round_trip(serializer, message) == message


def test_subclasses_of_plain_types_fold_to_their_base_value(serializer):
    value = [Color.RED, Level.HIGH, collections.OrderedDict(a=1),
             collections.defaultdict(list, b=[2])]
    result = round_trip(serializer, value)
    assert result == ['red', 3, {'a': 1}, {'b': [2]}]
    assert [type(item) for item in result] == [str, int, dict, dict]


def test_error_and_skipped_round_trip(serializer):
    error = Error({'error': "ValueError('x')", 'traceback': 'Traceback...', 'retries': 0,
                   'task_id': 'abc'})
    result = round_trip(serializer, [error, SKIPPED])
    assert isinstance(result[0], Error)
    assert result[0].metadata == error.metadata
    assert result[1] is SKIPPED


def raised(exc):
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_builtin_exception_comes_back_as_its_own_class(serializer):
    exc = raised(ValueError('bad value'))
    result = round_trip(serializer, exc)
    assert type(result) is ValueError
    assert result.args == ('bad value',)
    assert 'Traceback' in result.traceback and 'bad value' in result.traceback


def test_builtin_exception_without_message(serializer):
    result = round_trip(serializer, ZeroDivisionError())
    assert type(result) is ZeroDivisionError and result.args == ()
    assert result.traceback is None


def test_custom_exception_becomes_remote_exception(serializer):
    exc = raised(Boom('it broke'))
    result = round_trip(serializer, exc)
    assert type(result) is RemoteException
    assert result.type == qualified_name(Boom) == '%s.Boom' % __name__
    assert result.message == 'it broke' and str(result) == 'it broke'
    assert 'Boom: it broke' in result.traceback
    assert repr(result) == "Boom('it broke')"  # the original's repr, as Huey would show it
    assert repr(RemoteException('app.Boom', 'x')) == "app.Boom('x')"


def test_our_own_exceptions_become_remote_exceptions_with_qualified_names(serializer):
    result = round_trip(serializer, exceptions.TaskTimeout('too slow'))
    assert isinstance(result, RemoteException)
    assert result.type == 'queue_core.exceptions.TaskTimeout'
    assert result.traceback is None


def test_remote_exception_round_trips_unchanged(serializer):
    remote = RemoteException('app.errors.Boom', 'msg', 'tb text')
    result = round_trip(serializer, remote)
    assert (result.type, result.message, result.traceback) == ('app.errors.Boom', 'msg',
                                                               'tb text')


def test_base_exceptions_that_are_not_exceptions_stay_remote(serializer):
    result = round_trip(serializer, KeyboardInterrupt())
    assert isinstance(result, RemoteException) and result.type == 'KeyboardInterrupt'


def test_exception_map_names_type_message_traceback():
    data = exception_to_map(raised(KeyError('k')))
    assert data['type'] == 'KeyError'
    assert data['message'] == "'k'"
    assert data['traceback'].startswith('Traceback')


def test_builtin_whose_constructor_rejects_the_message_falls_back_to_remote(serializer):
    exc = UnicodeDecodeError('utf-8', b'\xff', 0, 1, 'invalid start byte')
    result = round_trip(serializer, exc)
    assert isinstance(result, RemoteException)
    assert result.type == 'UnicodeDecodeError' and 'invalid start byte' in result.message


def test_exception_type_names_that_are_not_exceptions_stay_remote(serializer):
    payload = msgpack.ExtType(EXT_EXCEPTION, msgpack.packb(
        {'type': 'open', 'message': 'x', 'traceback': None}))
    result = serializer.deserialize(msgpack.packb(payload))
    assert isinstance(result, RemoteException) and result.type == 'open'


class Opaque:
    pass


@pytest.mark.parametrize('value, type_name', [
    (Opaque(), '%s.Opaque' % __name__),
    ([1, {'nested': (Opaque(),)}], '%s.Opaque' % __name__),
    (lambda: None, 'function'),
    (datetime.time(12, 0), 'datetime.time'),
    (object(), 'object'),
    (2 ** 64, None),
    (-2 ** 63 - 1, None),
], ids=['object', 'nested', 'lambda', 'time', 'bare-object', 'int-too-big', 'int-too-small'])
def test_unserializable_values_raise_serialization_error(serializer, value, type_name):
    with pytest.raises(exceptions.SerializationError) as info:
        serializer.serialize(value)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, exceptions.QueueError)
    if type_name:
        assert type_name in str(info.value)


def test_self_referencing_list_raises_serialization_error(serializer):
    value: list = []
    value.append(value)
    with pytest.raises(exceptions.SerializationError):
        serializer.serialize(value)


def test_a_failed_serialize_leaves_nothing_behind_for_the_next(serializer):
    with pytest.raises(exceptions.SerializationError):
        serializer.serialize({'first': 'half', 'then': object()})
    assert round_trip(serializer, {'next': (1, 2)}) == {'next': (1, 2)}


def test_a_serialize_reached_from_inside_another_packs_apart(serializer):
    class Loud(Exception):
        def __repr__(self):  # runs while the outer value is half packed
            return 'Loud(%r)' % serializer.serialize({'inner': [1, 2, 3]})

    round_trip(serializer, {'warm': 'this thread has its packer now'})
    value = round_trip(serializer, {'a': 'before', 'b': Loud('x'), 'c': ('after',)})
    assert value['a'] == 'before' and value['c'] == ('after',)
    assert isinstance(value['b'], RemoteException) and value['b'].message == 'x'


def test_threads_serializing_at_once_each_get_their_own_bytes(serializer):
    import threading
    values = [{'thread': n, 'args': [(n, str(n) * n)] * 50} for n in range(8)]
    wrong = []

    def pack_many(value):
        expected = serializer.serialize(value)
        for _ in range(300):
            if serializer.serialize(value) != expected:
                wrong.append(value['thread'])

    threads = [threading.Thread(target=pack_many, args=(v,)) for v in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert [serializer.deserialize(serializer.serialize(v)) for v in values] == values


def test_deeply_nested_tuples_raise_serialization_error(serializer):
    value: tuple = ()
    for _ in range(5000):
        value = (value,)
    with pytest.raises(exceptions.SerializationError):
        serializer.serialize(value)


@pytest.mark.parametrize('data', [
    b'', b'\xc1', b'\x92\x01', b'\x91\x01\x02', b'\xd9\x05ab',
    b'\x81\x91\x01\x02',  # a map whose key is an (unhashable) array
    msgpack.packb(msgpack.ExtType(1, b'\x93\x01\x02\x03')),  # datetime with too few parts
    msgpack.packb(msgpack.ExtType(1, msgpack.packb([2020, 13, 1, 0, 0, 0, 0, None]))),
    msgpack.packb(msgpack.ExtType(3, msgpack.packb([[1]]))),  # set of a list
    msgpack.packb(msgpack.ExtType(5, msgpack.packb(7))),  # exception that is not a map
    msgpack.packb(msgpack.ExtType(6, msgpack.packb([1, 2]))),  # timedelta with two parts
    msgpack.packb(msgpack.ExtType(6, msgpack.packb(1e300))),
    'not bytes',
], ids=repr)
def test_malformed_bytes_raise_serialization_error(serializer, data):
    with pytest.raises(exceptions.SerializationError, match='malformed payload'):
        serializer.deserialize(data)


def test_unknown_extension_types_are_left_as_ext_values(serializer):
    data = msgpack.packb(msgpack.ExtType(99, b'abc'))
    assert serializer.deserialize(data) == msgpack.ExtType(99, b'abc')


def test_timedelta_written_as_seconds_is_still_read(serializer):
    data = msgpack.packb(msgpack.ExtType(6, msgpack.packb(90.5)))
    assert serializer.deserialize(data) == datetime.timedelta(seconds=90.5)


def test_pickle_serializer_round_trips_arbitrary_objects():
    pickler = PickleSerializer()
    value = {'when': datetime.datetime(2030, 1, 1), 'color': Color.RED, 'skip': SKIPPED}
    result = pickler.deserialize(pickler.serialize(value))
    assert result == value and result['skip'] is SKIPPED and result['color'] is Color.RED


def test_pickle_serializer_errors_are_serialization_errors():
    pickler = PickleSerializer()
    with pytest.raises(exceptions.SerializationError):
        pickler.serialize(lambda: None)
    with pytest.raises(exceptions.SerializationError, match='malformed payload'):
        pickler.deserialize(b'not a pickle')
