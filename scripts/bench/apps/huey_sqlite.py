"""The benchmark application for Huey 3.5.4 on SQLite (``SqliteHuey``): the same no-op
task. ``huey_consumer.py apps.huey_sqlite.huey`` reads the file from
``BENCH_SQLITE_PATH``; the benchmark process itself calls ``build(path)``."""
from __future__ import annotations

import os
from typing import Any

from apps.huey_app import noop


def build(path: str) -> tuple[Any, Any]:
    """A ``SqliteHuey`` named ``bench`` in the file ``path`` and its ``noop`` task."""
    from huey import SqliteHuey

    huey = SqliteHuey('bench', filename=path)
    return huey, huey.task()(noop)


def __getattr__(name: str) -> Any:
    if name == 'huey':
        huey, _ = build(os.environ['BENCH_SQLITE_PATH'])
        globals()['huey'] = huey
        return huey
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
