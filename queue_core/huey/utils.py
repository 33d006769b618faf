"""The helpers Huey applications import from ``huey.utils``."""
from __future__ import annotations

import datetime
import importlib
from typing import Any

from ..clock import normalize_expires, normalize_time, utc_now
from ..values import SKIPPED, Error

#: The current UTC time as a naive datetime.
utcnow = utc_now


def normalize_expire_time(expires: Any, utc: bool = True) -> datetime.datetime:
    """An expiry (seconds, timedelta or datetime) as a naive datetime in the queue clock."""
    return normalize_expires(expires, utc)



def load_class(path: str) -> Any:
    """The object ``package.module.name`` names."""
    module, _, name = path.rpartition('.')
    return getattr(importlib.import_module(module), name)


def encode(value: str | bytes) -> bytes:
    """``value`` as bytes (UTF-8 for text)."""
    return value.encode('utf-8') if isinstance(value, str) else bytes(value)


__all__ = ['Error', 'SKIPPED', 'normalize_time', 'normalize_expire_time', 'utcnow',
           'load_class', 'encode']
