"""Where a queue's signals go: its sinks (a bus publisher above all), then the handlers
registered with ``@queue.signal()`` (SPEC §3), each event carrying the source its thread
emits as (``app`` unless a worker or the consumer says otherwise).

Sinks come first and are told nothing by a handler's failure; while any sink is
attached, each event counts in the task's ``tseq`` (``queue_core.tseq``). A sink may
batch a thread's events (``coalesce``) as long as they leave before that thread blocks,
stops, or runs a handler (``flush``), or when the sink's ``deadline`` comes.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Iterator

from . import signals as S
from .signals import SignalDispatcher, call_isolated
from .task import Task
from .tseq import count_event

logger = logging.getLogger('queue_core')


class SignalEmitter:
    """A queue's sinks and handlers, and the source each thread emits as."""

    def __init__(self) -> None:
        self.handlers = SignalDispatcher()
        self.sinks: list[Callable[..., Any]] = []
        self._context = threading.local()

    @property
    def counting(self) -> bool:
        """Whether events count in ``tseq`` (a sink is attached)."""
        return bool(self.sinks)

    def wants(self, signal: str) -> bool:
        """Whether emitting ``signal`` would reach anyone (a sink or a handler)."""
        return bool(self.sinks) or bool(self.handlers.handlers_for(signal))

    def add_sink(self, sink: Callable[..., Any]) -> None:
        """Call ``sink(signal, task, exc, source)`` for every signal, before handlers."""
        if sink not in self.sinks:
            self.sinks.append(sink)

    def remove_sink(self, sink: Callable[..., Any]) -> None:
        """Stop calling ``sink``."""
        if sink in self.sinks:
            self.sinks.remove(sink)

    def _sink_methods(self, name: str) -> list[Callable[..., Any]]:
        return [method for method in (getattr(sink, name, None) for sink in tuple(self.sinks))
                if callable(method)]

    def coalesce(self, deferred: bool = False) -> None:
        """Ask the sinks that can to batch this thread's events (see the module)."""
        for coalesce in self._sink_methods('coalesce'):
            coalesce(deferred)  # a publisher's never raises

    def deadline(self) -> float | None:
        """The earliest ``time.monotonic()`` a sink wants ``flush()`` for this thread."""
        due = [deadline() for deadline in self._sink_methods('deadline')]
        return min((d for d in due if d is not None), default=None)

    def flush(self) -> None:
        """Send at once what any sink holds for this thread."""
        for flush in self._sink_methods('flush'):
            flush()  # a publisher's never raises

    def close_sinks(self) -> None:
        """Flush and close every sink that can be closed; a failure is logged."""
        for close in self._sink_methods('close'):
            try:
                close()
            except Exception:
                logger.exception('closing signal sink %r failed',
                                 getattr(close, '__self__', close))

    @property
    def source(self) -> str:
        """Where events emitted by this thread come from (``app`` unless set)."""
        return getattr(self._context, 'source', S.SOURCE_APP)

    @contextlib.contextmanager
    def emitting_as(self, source: str) -> Iterator[None]:
        """Within the block, events from this thread carry ``source``."""
        previous = getattr(self._context, 'source', None)
        self._context.source = source
        try:
            yield
        finally:
            if previous is None:
                del self._context.source
            else:
                self._context.source = previous

    def emit(self, signal: str, task: Task, exc: BaseException | None = None, *,
             final: bool = False, bump: bool = True) -> None:
        """Hand a signal to the sinks (counting ``task.tseq`` unless ``bump`` is off: the
        count was taken when the task was stored), then to the handlers."""
        task.final = final
        handlers = self.handlers.handlers_for(signal)
        sinks = self.sinks
        if sinks:
            count_event(task, bump)
            source = self.source
            for sink in tuple(sinks):
                call_isolated(sink, 'signal sink', signal, task, exc, source)
            if handlers:  # a slow handler must not hold back an event a sink gathered
                self.flush()
        extra = (exc,) if signal == S.SIGNAL_ERROR else ()
        for handler in handlers:
            task.final = final  # a handler that enqueues the task again must not change it
            call_isolated(handler, 'signal handler', signal, task, *extra)
