"""Huey's storage class names, built with Huey's constructor arguments over
``queue_core``'s backends (the same data layout as ``storage=`` URLs give).

``RedisStorage.conn`` is the ``redis.Redis`` client, as in Huey. Huey's ``FileStorage``,
``PostgresStorage``, ``CySqliteStorage`` and ``BlackHoleStorage`` are not provided."""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from ..exceptions import ConfigurationError
from ..storage import MemoryStorage as _Memory
from ..storage.base import Storage
from ..storage.redis import RedisStorage as _Redis

BaseStorage = Storage


class RedisConnection(_Redis):
    """``queue_core``'s Redis storage with Huey's ``conn`` (the ``redis.Redis`` client)
    and ``pool`` attributes, for applications that use the connection directly."""

    @property
    def conn(self) -> Any:
        """The ``redis.Redis`` client of this process."""
        return self._client

    @property
    def pool(self) -> Any:
        """The client's connection pool."""
        return self._client.connection_pool


class MemoryStorage(_Memory):
    """In-process storage (Huey's ``MemoryStorage(name)``); one process only."""

    def __init__(self, name: str = 'huey', **_ignored: Any) -> None:
        super().__init__(name)


def SqliteStorage(name: str = 'huey', filename: str = 'huey.db', cache_mb: int = 8,
                  fsync: bool | None = None, journal_mode: str = 'wal', timeout: float = 5,
                  strict_fifo: bool = False, create_tables: bool = True,
                  **_ignored: Any) -> Storage:
    """A SQLite file (Huey's ``SqliteStorage`` arguments): ``filename`` relative to the
    current directory, ``timeout`` the busy timeout in seconds, ``fsync=True`` for
    synchronous=FULL. ``cache_mb``, ``journal_mode`` (always WAL), ``strict_fifo``
    (always FIFO within a priority) and ``create_tables`` are accepted and fixed."""
    from ..storage.sqlite import SqliteStorage as _Sqlite
    return _Sqlite(os.path.abspath(filename), name, timeout=float(timeout),
                   synchronous='FULL' if fsync else 'NORMAL')


def redis_url(host: str = 'localhost', port: int = 6379, db: int = 0,
              password: str | None = None, username: str | None = None,
              ssl: bool = False, unix_socket_path: str | None = None) -> str:
    """The ``redis://`` URL for Huey's connection keyword arguments."""
    auth = ''
    if password is not None:
        auth = '%s:%s@' % (quote(username or '', safe=''), quote(str(password), safe=''))
    if unix_socket_path:
        return 'unix://%s%s?db=%d' % (auth, unix_socket_path, int(db))
    return '%s://%s%s:%d/%d' % ('rediss' if ssl else 'redis', auth, host, int(port), int(db))


def RedisStorage(name: str = 'huey', blocking: bool = True, read_timeout: float = 1,
                 connection_pool: Any = None, url: str | None = None,
                 client_name: str | None = None, notify_result: bool = False,
                 notify_result_ttl: float = 60, clean_name: bool = True,
                 **connection_params: Any) -> Storage:
    """Redis with Huey's arguments: one of ``url``, ``connection_pool`` or connection
    keywords (``host``, ``port``, ``db``, ``password``, …; default ``localhost:6379/0``).
    Reads always block on the server and results always notify waiters, so ``blocking``,
    ``read_timeout`` and ``notify_result*`` are accepted and need no setting."""
    params = {k: v for k, v in connection_params.items() if v is not None}
    if sum(1 for given in (url, connection_pool, params) if given) > 1:
        raise ConfigurationError('Redis connection is over-determined: give only one of '
                                 'url, connection_pool or connection keywords')
    if connection_pool is not None:
        import redis
        storage: Storage = RedisConnection(
            lambda: redis.Redis(connection_pool=connection_pool), name,
            location='redis connection pool')
    else:
        known = ('host', 'port', 'db', 'password', 'username', 'ssl', 'unix_socket_path')
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ConfigurationError('Redis connection keywords not supported: %s (use url=)'
                                     % ', '.join(unknown))
        storage = RedisConnection.from_url(url or redis_url(**params), name)
    if client_name is not None:
        storage.conn.client_setname(client_name)  # type: ignore[attr-defined]
    return storage


__all__ = ['BaseStorage', 'MemoryStorage', 'SqliteStorage', 'RedisStorage', 'RedisConnection',
           'redis_url']
