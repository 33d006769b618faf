"""Signal names and local, synchronous dispatch of signals to handlers and sinks.

Handlers registered for a named signal run before catch-all handlers, each group in
registration order. A handler (or sink) that raises is logged at ERROR on the
``queue_core`` logger with its name and traceback; nothing else is affected.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

SIGNAL_ENQUEUED = 'enqueued'
SIGNAL_EXECUTING = 'executing'
SIGNAL_COMPLETE = 'complete'
SIGNAL_ERROR = 'error'
SIGNAL_CANCELED = 'canceled'
SIGNAL_RETRYING = 'retrying'
SIGNAL_SCHEDULED = 'scheduled'
SIGNAL_REVOKED = 'revoked'
SIGNAL_EXPIRED = 'expired'
SIGNAL_LOCKED = 'locked'
SIGNAL_TIMEOUT = 'timeout'
SIGNAL_RATE_LIMITED = 'rate-limited'
SIGNAL_INTERRUPTED = 'interrupted'

#: Every signal, in the order of the seed's reference table.
ALL_SIGNALS: tuple[str, ...] = (
    SIGNAL_ENQUEUED, SIGNAL_EXECUTING, SIGNAL_COMPLETE, SIGNAL_ERROR, SIGNAL_CANCELED,
    SIGNAL_RETRYING, SIGNAL_SCHEDULED, SIGNAL_REVOKED, SIGNAL_EXPIRED, SIGNAL_LOCKED,
    SIGNAL_TIMEOUT, SIGNAL_RATE_LIMITED, SIGNAL_INTERRUPTED,
)

#: Where an event comes from (see SPEC §7).
SOURCE_APP = 'app'
SOURCE_WORKER = 'worker'
SOURCE_SCHEDULER = 'scheduler'
SOURCE_CONSUMER = 'consumer'

logger = logging.getLogger('queue_core')

Handler = Callable[..., Any]
#: A sink is called as ``sink(signal, task, exc, source)`` for every emitted signal.
Sink = Callable[[str, Any, 'BaseException | None', str], Any]


def _name_of(func: Any) -> str:
    return getattr(func, '__qualname__', None) or getattr(func, '__name__', None) or repr(func)


class SignalDispatcher:
    """Holds handlers per signal plus catch-all handlers, and calls them in order."""

    def __init__(self) -> None:
        self._named: dict[str, list[Handler]] = {}
        self._any: list[Handler] = []

    def connect(self, receiver: Handler, *signals: str) -> None:
        """Register ``receiver`` for ``signals``, or for every signal when none are given."""
        for signal in signals:
            if signal not in ALL_SIGNALS:
                raise ValueError('unknown signal %r; expected one of %s'
                                 % (signal, ', '.join(ALL_SIGNALS)))
        if not signals:
            if receiver not in self._any:
                self._any.append(receiver)
            return
        for signal in signals:
            handlers = self._named.setdefault(signal, [])
            if receiver not in handlers:
                handlers.append(receiver)

    def disconnect(self, receiver: Handler, *signals: str) -> None:
        """Unregister ``receiver`` from ``signals``, or from everything when none are given."""
        targets: Iterable[str] = signals or list(self._named)
        for signal in targets:
            handlers = self._named.get(signal)
            if handlers and receiver in handlers:
                handlers.remove(receiver)
        if not signals and receiver in self._any:
            self._any.remove(receiver)

    def handlers_for(self, signal: str) -> list[Handler]:
        """The handlers ``signal`` reaches: named ones first, then catch-alls."""
        return self._named.get(signal, []) + self._any

    def has_handlers(self) -> bool:
        """True when any handler is registered at all."""
        return bool(self._any) or any(self._named.values())


def call_isolated(func: Callable[..., Any], kind: str, signal: str, *args: Any) -> None:
    """Call ``func(signal, *args)``; an exception is logged with the callable's name."""
    try:
        func(signal, *args)
    except Exception:
        logger.exception('%s %s raised while handling %r', kind, _name_of(func), signal)
