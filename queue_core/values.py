"""Values that travel through storage as results: ``Error`` and ``SKIPPED``."""
from __future__ import annotations

from typing import Any


class Error:
    """A failed task's outcome as data.

    Stored as the result of a failed attempt, and handed to a chord callback in place of a
    member's value. ``metadata`` holds ``error`` (``repr`` of the exception),
    ``traceback``, ``retries`` and ``task_id``.
    """

    __slots__ = ('metadata',)

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata

    def __repr__(self) -> str:
        return '<Error %s>' % (self.metadata.get('error'),)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Error) and other.metadata == self.metadata

    __hash__ = None  # type: ignore[assignment]


class _Skipped:
    """The value a revoked, expired or canceled chord member contributes."""

    _instance: '_Skipped | None' = None

    def __new__(cls) -> '_Skipped':
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return 'SKIPPED'

    def __reduce__(self) -> str:
        return 'SKIPPED'


#: Stands in a chord's results for a member that never ran (revoked, expired, canceled).
SKIPPED = _Skipped()
