"""Huey's serializer names.

``Serializer`` is Huey's default, pickle (optionally compressed): passing
``serializer=Serializer()`` is the explicit opt-in for arguments that are not msgpack data.
``SignedSerializer(secret, salt='huey')`` signs msgpack payloads with an HMAC and refuses a
tampered one (``queue_core.serializer.SignedSerializer``)."""
from __future__ import annotations

import gzip
import pickle
import zlib
from typing import Any

from ..exceptions import SerializationError
from ..serializer import MsgpackSerializer, PickleSerializer
from ..serializer import SignedSerializer as _Signed

#: The first byte of a gzip (0x1f) or zlib (0x78) stream.
_COMPRESSED_MARKS = (0x1F, 0x78)


class Compressed:
    """Wraps a serializer with gzip (or zlib) compression, as Huey's ``compression=True``."""

    def __init__(self, inner: Any, level: int = 6, use_zlib: bool = False) -> None:
        self.inner, self.level, self.use_zlib = inner, level, use_zlib

    def serialize(self, value: Any) -> bytes:
        """Serialize, then compress."""
        data = self.inner.serialize(value)
        return zlib.compress(data, self.level) if self.use_zlib else gzip.compress(
            data, self.level)

    def deserialize(self, data: bytes) -> Any:
        """Decompress (a payload that is not compressed is read as it is), then decode."""
        if data and data[0] in _COMPRESSED_MARKS:
            try:
                data = zlib.decompress(data) if self.use_zlib else gzip.decompress(data)
            except (OSError, zlib.error, EOFError) as exc:
                raise SerializationError('malformed compressed payload: %s' % exc) from exc
        return self.inner.deserialize(data)


class Serializer(Compressed):
    """Huey's ``Serializer``: pickle, compressed when ``compression=True``. Only for a
    storage you trust (unpickling runs code)."""

    def __init__(self, compression: bool = False, compression_level: int = 6,
                 use_zlib: bool = False, pickle_protocol: int | None = None) -> None:
        super().__init__(PickleSerializer(pickle_protocol or pickle.HIGHEST_PROTOCOL),
                         compression_level, use_zlib)
        self.comp = compression

    def serialize(self, value: Any) -> bytes:
        """Pickle ``value`` (and compress it when asked)."""
        return super().serialize(value) if self.comp else self.inner.serialize(value)

    def deserialize(self, data: bytes) -> Any:
        """Read what ``serialize`` wrote."""
        return super().deserialize(data) if self.comp else self.inner.deserialize(data)


class SignedSerializer(_Signed):
    """Huey's ``SignedSerializer(secret, salt='huey', **kwargs)`` over msgpack; a message
    whose signature does not match raises ``SerializationError`` and is never run."""

    def __init__(self, secret: str | bytes | None = None, salt: str | bytes = 'huey',
                 serializer: Any = None, **_huey_options: Any) -> None:
        super().__init__(secret or '', salt, serializer)


__all__ = ['Serializer', 'SignedSerializer', 'PickleSerializer', 'MsgpackSerializer',
           'Compressed']
