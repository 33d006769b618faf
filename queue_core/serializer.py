"""msgpack serialization of task messages and results, with extension types.

Round-trips datetimes, timedeltas, tuples, sets, frozensets, bytes, exceptions (as type,
message, traceback), ``Error`` and ``SKIPPED``. Nothing is unpickled unless a
``PickleSerializer`` is configured explicitly. ``SignedSerializer`` wraps either with an
HMAC so that a tampered message is refused.

An exception decodes to the builtin exception of the same name when there is one, and
otherwise to a ``RemoteException`` carrying ``type``, ``message`` and ``traceback``.
"""
from __future__ import annotations

import builtins
import datetime
import hashlib
import hmac
import pickle
import threading
import traceback as traceback_module
from typing import Any

import msgpack

from .exceptions import ConfigurationError, SerializationError
from .values import SKIPPED, Error, _Skipped

EXT_DATETIME = 1
EXT_TUPLE = 2
EXT_SET = 3
EXT_FROZENSET = 4
EXT_EXCEPTION = 5
EXT_TIMEDELTA = 6
EXT_ERROR = 7
EXT_SKIPPED = 8
EXT_DATE = 9

#: The builtin types a subclass instance folds to (in this order) before packing.
_PLAIN_BASES: tuple[type[Any], ...] = (int, float, bytes, dict, list)


class RemoteException(Exception):
    """An exception that crossed a process boundary as data.

    ``type`` is the qualified class name of the original, ``message`` its ``str``, and its
    ``repr`` is the original's when that travelled with it (as a task's stored error shows
    it, e.g. ``TestError(0)``), else ``type(message)``.
    """

    def __init__(self, type: str, message: str, traceback: str | None = None,
                 original_repr: str | None = None) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.traceback = traceback
        self.original_repr = original_repr

    def __repr__(self) -> str:
        return self.original_repr or '%s(%r)' % (self.type, self.message)


def qualified_name(cls: type) -> str:
    """``ValueError`` for builtins, ``module.Class`` for everything else."""
    module = cls.__module__
    if module in ('builtins', '__builtin__'):
        return cls.__qualname__
    return '%s.%s' % (module, cls.__qualname__)


def exception_to_map(exc: BaseException) -> dict[str, Any]:
    """An exception as a plain map: ``type``, ``message``, ``traceback``."""
    if isinstance(exc, RemoteException):
        return {'type': exc.type, 'message': exc.message, 'traceback': exc.traceback}
    tb = getattr(exc, '__traceback__', None)
    text = ''.join(traceback_module.format_exception(type(exc), exc, tb)) if tb else None
    return {'type': qualified_name(type(exc)), 'message': str(exc), 'traceback': text}


def exception_from_map(data: dict[str, Any]) -> BaseException:
    """The inverse of ``exception_to_map``: a builtin exception, else ``RemoteException``."""
    name = data.get('type') or 'Exception'
    message = data.get('message') or ''
    cls = getattr(builtins, name, None) if '.' not in name else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(message) if message else cls()
            exc.traceback = data.get('traceback')  # type: ignore[attr-defined]
            return exc
        except Exception:
            pass
    original = data.get('repr')
    return RemoteException(name, message, data.get('traceback'),
                           original if isinstance(original, str) else None)


class MsgpackSerializer:
    """The default serializer: msgpack plus the extension types above."""

    def __init__(self) -> None:
        self._packer_kwargs: dict[str, Any] = dict(use_bin_type=True, strict_types=True,
                                                   default=self._default)
        #: Each thread's reusable packer (a third of the cost of ``packb``'s new one).
        self._packers = threading.local()

    def _pack(self, obj: Any) -> bytes:
        return msgpack.packb(obj, **self._packer_kwargs)

    def _default(self, obj: Any) -> Any:
        # strict_types sends subclasses here too: fold them to their base type.
        if isinstance(obj, tuple):
            return msgpack.ExtType(EXT_TUPLE, self._pack(list(obj)))
        if isinstance(obj, datetime.datetime):
            offset = obj.utcoffset()
            parts = [obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second,
                     obj.microsecond, None if offset is None else offset.total_seconds()]
            return msgpack.ExtType(EXT_DATETIME, self._pack(parts))
        if isinstance(obj, datetime.date):
            return msgpack.ExtType(EXT_DATE, self._pack([obj.year, obj.month, obj.day]))
        if isinstance(obj, datetime.timedelta):
            # Exact parts: total_seconds() is a float and loses microseconds past ~300 years.
            parts = [obj.days, obj.seconds, obj.microseconds]
            return msgpack.ExtType(EXT_TIMEDELTA, self._pack(parts))
        if isinstance(obj, frozenset):
            return msgpack.ExtType(EXT_FROZENSET, self._pack(list(obj)))
        if isinstance(obj, set):
            return msgpack.ExtType(EXT_SET, self._pack(list(obj)))
        if isinstance(obj, Error):
            return msgpack.ExtType(EXT_ERROR, self._pack(obj.metadata))
        if isinstance(obj, _Skipped):
            return msgpack.ExtType(EXT_SKIPPED, b'')
        if isinstance(obj, BaseException):
            data = exception_to_map(obj)
            data['repr'] = repr(obj)
            return msgpack.ExtType(EXT_EXCEPTION, self._pack(data))
        if isinstance(obj, bool):
            return bool(obj)
        if isinstance(obj, str):
            # str(obj) would call a subclass's __str__ (a str-mixin Enum gives 'Cls.NAME').
            return str.__str__(obj)
        for base in _PLAIN_BASES:
            if isinstance(obj, base):
                return base(obj)
        raise TypeError('cannot serialize object of type %s' % qualified_name(type(obj)))

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == EXT_TUPLE:
            return tuple(self._unpack(data))
        if code == EXT_DATETIME:
            y, mo, d, h, mi, s, us, offset = self._unpack(data)
            tz = None if offset is None else datetime.timezone(
                datetime.timedelta(seconds=offset))
            return datetime.datetime(y, mo, d, h, mi, s, us, tzinfo=tz)
        if code == EXT_DATE:
            return datetime.date(*self._unpack(data))
        if code == EXT_TIMEDELTA:
            value = self._unpack(data)
            if isinstance(value, list):
                days, seconds, microseconds = value
                return datetime.timedelta(days, seconds, microseconds)
            return datetime.timedelta(seconds=value)
        if code == EXT_SET:
            return set(self._unpack(data))
        if code == EXT_FROZENSET:
            return frozenset(self._unpack(data))
        if code == EXT_ERROR:
            return Error(self._unpack(data))
        if code == EXT_SKIPPED:
            return SKIPPED
        if code == EXT_EXCEPTION:
            return exception_from_map(self._unpack(data))
        return msgpack.ExtType(code, data)

    def _unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=False,
                               ext_hook=self._ext_hook, use_list=True)

    def serialize(self, value: Any) -> bytes:
        """Encode ``value``; raises ``SerializationError`` (a ``TypeError``) naming the type."""
        # The thread's packer is taken while in use, so a serialize() reached from inside
        # another (a __repr__ calling it, say) packs with a packer of its own.
        packers = self._packers.__dict__
        packer = packers.pop('packer', None) or msgpack.Packer(**self._packer_kwargs)
        try:
            return packer.pack(value)  # the packer resets itself after an error, too
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise SerializationError(str(exc)) from exc
        finally:
            packers['packer'] = packer

    def deserialize(self, data: bytes) -> Any:
        """Decode bytes written by ``serialize``; raises ``SerializationError`` if malformed."""
        try:
            return self._unpack(data)
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError('malformed payload: %s' % exc) from exc


class PickleSerializer:
    """Explicit opt-in for arbitrary Python objects. Only use it with a trusted storage."""

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def serialize(self, value: Any) -> bytes:
        """Pickle ``value``; raises ``SerializationError`` if it cannot be pickled."""
        try:
            return pickle.dumps(value, self.protocol)
        except Exception as exc:
            raise SerializationError(str(exc)) from exc

    def deserialize(self, data: bytes) -> Any:
        """Unpickle bytes written by ``serialize``."""
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise SerializationError('malformed payload: %s' % exc) from exc


class SignedSerializer:
    """Signs every payload with an HMAC (SHA-256 over a key derived from ``secret`` and
    ``salt``) and refuses, with ``SerializationError``, a payload whose signature does not
    match: a message altered in storage, or written with another secret, is never decoded,
    so it never runs. Wraps ``serializer`` (msgpack by default)."""

    DIGEST_SIZE = hashlib.sha256().digest_size

    def __init__(self, secret: str | bytes, salt: str | bytes = 'queue_core',
                 serializer: Any = None) -> None:
        if not secret or not salt:
            raise ConfigurationError('SignedSerializer needs a non-empty secret and salt')
        secret_bytes = secret.encode() if isinstance(secret, str) else bytes(secret)
        salt_bytes = salt.encode() if isinstance(salt, str) else bytes(salt)
        self._key = hashlib.sha256(salt_bytes + b'\x00' + secret_bytes).digest()
        self.inner = serializer if serializer is not None else MsgpackSerializer()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def serialize(self, value: Any) -> bytes:
        """Encode ``value`` with the inner serializer and prefix the signature."""
        payload = self.inner.serialize(value)
        return self._sign(payload) + payload

    def deserialize(self, data: bytes) -> Any:
        """Check the signature, then decode; ``SerializationError`` when it does not match."""
        data = bytes(data)
        signature, payload = data[:self.DIGEST_SIZE], data[self.DIGEST_SIZE:]
        if len(signature) < self.DIGEST_SIZE or not hmac.compare_digest(
                signature, self._sign(payload)):
            raise SerializationError(
                'signature mismatch: message refused (it was altered, or signed with '
                'another secret or salt)')
        return self.inner.deserialize(payload)
