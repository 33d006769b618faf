"""Named hook lists (pre/post-execute, startup, shutdown), kept in registration order."""
from __future__ import annotations

import logging
from typing import Any, Callable

from .exceptions import CancelExecution

logger = logging.getLogger('queue_core')


class HookSet:
    """Hooks of one kind, by name; a name registered again replaces the earlier hook."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._hooks: dict[str, Callable[..., Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def register(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a hook under ``name`` (default: the function's name)."""
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self._hooks[name or func.__name__] = func
            return func
        return decorator

    def unregister(self, name_or_func: str | Callable[..., Any]) -> bool:
        """Remove a hook by name or by function; returns whether one was removed."""
        if isinstance(name_or_func, str):
            return self._hooks.pop(name_or_func, None) is not None
        for name, func in list(self._hooks.items()):
            if func is name_or_func:
                del self._hooks[name]
                return True
        return False

    def run(self, *args: Any) -> None:
        """Call every hook with ``args``; ``CancelExecution`` propagates (a pre-execute hook
        cancels the task), any other exception is logged and the next hook runs, as in
        Huey."""
        for name, func in list(self._hooks.items()):
            try:
                func(*args)
            except CancelExecution:
                logger.warning('%s hook %s canceled the task', self.kind, name)
                raise
            except Exception:
                logger.exception('%s hook %s raised', self.kind, name)

    def run_isolated(self, *args: Any) -> None:
        """Call every hook with ``args``; an exception is logged with the hook's name."""
        for name, func in list(self._hooks.items()):
            try:
                func(*args)
            except Exception:
                logger.exception('%s hook %s raised', self.kind, name)
