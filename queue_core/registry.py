"""The task registry: registry name (``module.name``) to task wrapper."""
from __future__ import annotations

import datetime

from .task import Task, TaskWrapper


class TaskRegistry:
    """Every task wrapper a queue knows, and which of them are periodic."""

    def __init__(self) -> None:
        self._wrappers: dict[str, TaskWrapper] = {}

    def register(self, wrapper: TaskWrapper) -> None:
        """Add ``wrapper`` (a later registration of the same name replaces it)."""
        self._wrappers[wrapper.registry_name] = wrapper

    def unregister(self, wrapper: TaskWrapper) -> bool:
        """Remove ``wrapper``; returns whether it was registered."""
        return self._wrappers.pop(wrapper.registry_name, None) is not None

    def lookup(self, registry_name: str) -> TaskWrapper | None:
        """The wrapper registered as ``registry_name``, or ``None``."""
        return self._wrappers.get(registry_name)

    def names(self) -> list[str]:
        """Every registered name."""
        return list(self._wrappers)

    def periodic_due(self, timestamp: datetime.datetime) -> list[Task]:
        """A new task for each periodic task whose schedule matches ``timestamp``."""
        return [wrapper.s() for wrapper in self._wrappers.values()
                if wrapper.validate_datetime is not None and wrapper.validate_datetime(timestamp)]
