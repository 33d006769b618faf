"""Storage backends and ``storage_from_url``.

URLs: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``,
``redis://host:port/db``, ``rediss://…``. A bad URL raises ``ConfigurationError``.
"""
from __future__ import annotations

from ..exceptions import ConfigurationError
from .base import InFlight, Storage
from .memory import MemoryStorage

__all__ = ['InFlight', 'Storage', 'MemoryStorage', 'storage_from_url']


def storage_from_url(url: str, name: str = 'queue') -> Storage:
    """Build the storage a URL names, for the queue called ``name``."""
    if not isinstance(url, str) or '://' not in url:
        raise ConfigurationError('storage URL %r is not of the form scheme://…; use '
                                 'memory://, sqlite:///path.db or redis://host:port/db' % (url,))
    scheme = url.split('://', 1)[0].lower()
    if scheme == 'memory':
        return MemoryStorage(name)
    if scheme == 'sqlite':
        from .sqlite import SqliteStorage
        return SqliteStorage.from_url(url, name)
    if scheme in ('redis', 'rediss', 'unix'):
        from .redis import RedisStorage
        return RedisStorage.from_url(url, name)
    raise ConfigurationError('storage URL %r has unknown scheme %r; use memory://, '
                             'sqlite:///path.db or redis://host:port/db' % (url, scheme))
