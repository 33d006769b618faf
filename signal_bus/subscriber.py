"""``Subscriber``: follow the broker's event stream as one gap-free, ordered stream.

A subscriber owns a SUB socket on the broker's publish endpoint and, for repairs, a
DEALER socket on its control endpoint; both belong to the thread that receives (the one
running ``run()`` or iterating). When the numbering jumps, the missing events are fetched
from the broker's ring and handed out before anything that arrived after them; what the
ring no longer holds is reported to ``on_loss`` handlers, and a broker that stays silent
(no heartbeat for ``silence_after`` seconds) to ``on_silence`` handlers.

Each wake-up takes in everything the socket already holds (up to ``_DRAIN_LIMIT``
messages); an event that is exactly the next of its stream goes straight to the delivery
queue as a lazily decoded ``Event``, everything else (the first event of a topic, a jump,
a new epoch, meta topics, malformed input) takes the slow path that repairs and reports.
"""
from __future__ import annotations

import collections
import contextlib
import fnmatch
import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import zmq

from queue_core.signals import ALL_SIGNALS, SIGNAL_ERROR, SignalDispatcher

from . import wire
from .client_sockets import ControlClient, open_subscription
from .config import DEFAULT_PUBLISH, neighbour_endpoint
from .event import ErrorInfo, Event
from .exceptions import BusConfigError, BusError, WireError
from .keys import client_keys
from .sequence import SequenceTracker, SilenceWatch

__all__ = ['ControlClient', 'Subscriber']

logger = logging.getLogger('signal_bus.subscriber')

LossHandler = Callable[[Any, Any, Any], Any]
SilenceHandler = Callable[[bool, float], Any]
#: How often a blocked receive looks whether ``close()`` was called.
_WAKE_INTERVAL = 0.05
#: Heartbeats come every second: this long without a word from the broker is silence.
SILENCE_AFTER = 3.0
#: The most messages taken in per wake-up, so ``close()`` and silence stay prompt.
_DRAIN_LIMIT = 1000
_TOPIC_CACHE_LIMIT = 4096


class _Notice:
    """A loss or a change of silence waiting in the delivery queue, so that handlers
    learn of it in stream order."""

    __slots__ = ('handlers', 'args')

    def __init__(self, handlers: list[Callable[..., Any]], args: tuple[Any, ...]) -> None:
        self.handlers, self.args = handlers, args


def _name_of(func: Any) -> str:
    return getattr(func, '__qualname__', None) or getattr(func, '__name__', None) or repr(func)


class Subscriber:
    """Receive bus events, repair gaps from the broker's ring, and call handlers.

    ``signals`` limits the stream to those signals (filtered by the broker); ``tasks``
    is a list of globs on the task's registry name (filtered here). ``control`` defaults
    to the publish port + 1 on the same host. ``curve_server_key`` (the broker's public
    key) and ``curve_keypair`` (``(public, secret)``) turn on CURVE encryption.
    ``silence_after`` is how long without a word from the broker counts as silence
    (heartbeats come every second).
    """

    def __init__(self, endpoint: str = DEFAULT_PUBLISH, *, control: str | None = None,
                 signals: Iterable[str] | None = None, tasks: Iterable[str] | None = None,
                 curve_server_key: bytes | str | None = None,
                 curve_keypair: tuple[bytes | str, bytes | str] | str | None = None,
                 rcvhwm: int | None = None, replay_timeout: float = 5.0,
                 silence_after: float = SILENCE_AFTER) -> None:
        if isinstance(signals, str):
            signals = [signals]
        if isinstance(tasks, str):
            tasks = [tasks]
        chosen = None if signals is None else tuple(dict.fromkeys(signals))
        for signal in chosen or ():
            if signal not in ALL_SIGNALS:
                raise BusConfigError('unknown signal %r; expected one of %s'
                                     % (signal, ', '.join(ALL_SIGNALS)))
        self.endpoint = endpoint
        self.control_endpoint = control or neighbour_endpoint(endpoint)
        self.signals = chosen
        self.tasks = tuple(tasks) if tasks is not None else None
        self.silence_after = silence_after
        self._curve = client_keys(curve_server_key, curve_keypair)
        self._context = zmq.Context()
        try:
            self._sub = open_subscription(self._context, endpoint, chosen, self._curve,
                                          rcvhwm)
        except BusConfigError:
            self._context.term()
            raise
        self._control = ControlClient(self._context, self.control_endpoint, self._curve,
                                      replay_timeout)
        self._init_stream(chosen)
        self._closing = False  # set by close() from any thread; read by the receiver
        # Held while a thread uses the sockets; _users counts nested uses by that thread.
        self._busy = threading.RLock()
        self._users = 0
        self._closed = False

    def _init_stream(self, signals: tuple[str, ...] | None) -> None:
        self._dispatcher = SignalDispatcher()
        self._handlers: dict[str, tuple[Callable[..., Any], ...]] = {}
        self._loss_handlers: list[LossHandler] = []
        self._silence_handlers: list[SilenceHandler] = []
        self._tracker = SequenceTracker(signals)
        self._ready: collections.deque[Event | _Notice] = collections.deque()
        # topic frame -> (signal, task name, wanted by the task globs)
        self._routes: dict[bytes, tuple[str, str, bool]] = {}
        self._received = self._delivered = 0
        self._counts = dict.fromkeys(('lost', 'replayed', 'epoch_changes', 'publisher_lost',
                                      'malformed', 'heartbeats', 'silences'), 0)
        self._connected = False
        self._silence = SilenceWatch(self.silence_after, time.monotonic())

    # -- registration --------------------------------------------------------------------

    def signal(self, *signals: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: call the function as ``handler(signal, task, *extra)`` for events
        of ``signals`` (every signal when none are given). For ``error`` the extra is an
        ``ErrorInfo`` with ``type``, ``message`` and ``traceback``."""
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self._dispatcher.connect(func, *signals)
            self._handlers.clear()
            return func
        return decorator

    def disconnect_signal(self, receiver: Callable[..., Any], *signals: str) -> None:
        """Unregister a handler from ``signals``, or from everything when none are given."""
        self._dispatcher.disconnect(receiver, *signals)
        self._handlers.clear()

    def on_loss(self, func: LossHandler | None = None) -> Any:
        """Decorator (with or without parentheses): call ``func(count, first_seq,
        last_seq)`` when events are lost. ``count`` is None after a broker restart;
        ``first_seq``/``last_seq`` are None for events a publisher never delivered."""
        def decorator(handler: LossHandler) -> LossHandler:
            self._loss_handlers.append(handler)
            return handler
        return decorator(func) if func is not None else decorator

    def on_silence(self, func: SilenceHandler | None = None) -> Any:
        """Decorator (with or without parentheses): call ``func(True, seconds)`` once when
        the broker has not been heard for ``silence_after`` seconds (``seconds``: how long
        it has been quiet; this also fires before the first contact), and ``func(False,
        seconds)`` once when it is heard again (``seconds``: how long the silence lasted)."""
        def decorator(handler: SilenceHandler) -> SilenceHandler:
            self._silence_handlers.append(handler)
            return handler
        return decorator(func) if func is not None else decorator

    # -- receiving -----------------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Return once the broker has answered the subscription with a heartbeat.

        Events that arrive meanwhile are kept for delivery; silence and loss handlers
        run for what precedes them. Raises ``TimeoutError`` when no heartbeat comes
        within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._using():
            while not self._connected:
                while self._ready and type(self._ready[0]) is _Notice:
                    self._notify(self._ready.popleft())  # type: ignore[arg-type]
                remaining = deadline - time.monotonic()
                if self._closing:
                    raise BusError('the subscriber was closed before it connected')
                if remaining <= 0:
                    raise TimeoutError(
                        'no heartbeat from the broker at %s within %.1fs; is signal-broker '
                        'running and publishing there?' % (self.endpoint, timeout))
                self._pump(min(remaining, _WAKE_INTERVAL))

    def receive(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when ``timeout`` seconds pass or the subscriber closes.

        Loss and silence handlers run here, in stream order, when their notice reaches
        the head.
        """
        ready = self._ready
        if ready and type(ready[0]) is Event and not self._closing:
            self._delivered += 1  # the common case: no lock, no clock
            return ready.popleft()  # type: ignore[return-value]
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._using():
            while not self._closing:
                while ready:
                    item = ready.popleft()
                    if type(item) is _Notice:
                        self._notify(item)
                        continue
                    self._delivered += 1
                    return item  # type: ignore[return-value]
                remaining = (_WAKE_INTERVAL if deadline is None
                             else deadline - time.monotonic())
                if remaining <= 0:
                    return None
                self._pump(min(remaining, _WAKE_INTERVAL))
        return None

    def __iter__(self) -> Iterator[Event]:
        """Yield events until ``close()``; handlers are not called (``run()`` does that)."""
        while True:
            event = self.receive()
            if event is None:
                return
            yield event

    def run(self) -> None:
        """Deliver events to the handlers until ``close()`` or Ctrl-C, then close."""
        receive, dispatch = self.receive, self.dispatch
        try:
            while True:
                event = receive()
                if event is None:
                    break
                dispatch(event)
        except KeyboardInterrupt:
            logger.info('subscriber interrupted; closing')
        finally:
            self.close()

    def dispatch(self, event: Event) -> None:
        """Call the handlers for ``event``; one that raises is logged and skipped."""
        signal = event.signal
        handlers = self._handlers.get(signal)
        if handlers is None:
            handlers = self._handlers[signal] = tuple(self._dispatcher.handlers_for(signal))
        if signal == SIGNAL_ERROR:
            error = event.error or ErrorInfo('Exception', '')
            for handler in handlers:
                try:
                    handler(signal, event, error)
                except Exception:
                    self._handler_failed(handler, signal, event)
            return
        for handler in handlers:  # two-argument calls: cheaper than an empty *extra
            try:
                handler(signal, event)
            except Exception:
                self._handler_failed(handler, signal, event)

    @staticmethod
    def _handler_failed(handler: Callable[..., Any], signal: str, event: Event) -> None:
        logger.exception('subscriber handler %s raised while handling %r (task %s)',
                         _name_of(handler), signal, event.id)

    def _notify(self, notice: _Notice) -> None:
        for handler in notice.handlers:
            try:
                handler(*notice.args)
            except Exception:
                logger.exception('handler %s raised', _name_of(handler))

    # -- the stream ----------------------------------------------------------------------

    def _pump(self, timeout: float) -> None:
        """Take in what is queued; otherwise wait up to ``timeout`` for more."""
        if self._closed or self._drain():
            return
        if self._sub.poll(int(timeout * 1000)):
            self._drain()
        else:
            self._check_silence()

    def _drain(self) -> int:
        """Take in the messages the socket already holds (at most ``_DRAIN_LIMIT``)."""
        recv, routes, tracker, ready = self._sub.recv, self._routes, self._tracker, self._ready
        taken = 0
        while taken < _DRAIN_LIMIT:
            try:
                frame = recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            taken += 1
            if taken == 1:
                self._heard()  # before what was heard, so "heard again" precedes it
            # Frame by frame: a frame knows whether more follow, which spares the RCVMORE
            # query recv_multipart makes per frame (the dearest part of receiving).
            frames = [frame.bytes]
            while frame.more:
                frame = recv(copy=False)
                frames.append(frame.bytes)
            route = routes.get(frames[0]) if len(frames) == 3 else None
            if route is None:
                self._take_unrouted(frames)
                continue
            try:
                seq, sseq, epoch, gap = wire.decode_meta_fields(frames[1])
            except WireError as exc:
                self._malformed(exc)
                continue
            body = frames[2]
            if not wire.is_map_frame(body):
                self._malformed(WireError('event body must be a msgpack map'))
                continue
            self._received += 1
            signal, task_name, wanted = route
            if epoch != tracker.epoch or not tracker.take_next(signal, seq, sseq):
                self._take_live(wire.EventMessage(signal, task_name,
                                                  wire.EventMeta(seq, sseq, epoch, gap), body))
            elif wanted:
                ready.append(Event.received(signal, task_name, frames[0], seq, sseq, epoch,
                                            gap, body))
        return taken

    def _take_unrouted(self, frames: list[bytes]) -> None:
        """A meta message, malformed input, or the first event of a topic (whose route
        is learnt here), fully decoded and checked."""
        try:
            message = wire.decode_message(frames)
        except WireError as exc:
            self._malformed(exc)
            return
        if isinstance(message, wire.MetaMessage):
            self._take_meta(message)
            return
        if len(self._routes) >= _TOPIC_CACHE_LIMIT:
            self._routes.clear()
        self._routes[bytes(frames[0])] = (message.signal, message.task_name,
                                          self._task_wanted(message.task_name))
        self._received += 1
        self._take_live(message)

    def _malformed(self, exc: WireError) -> None:
        self._counts['malformed'] += 1
        logger.warning('dropped a malformed message from %s: %s', self.endpoint, exc)

    def _take_live(self, message: wire.EventMessage) -> None:
        self._check_epoch(message.meta.epoch)
        if not self._tracker.wants(message.signal):
            return
        missing = self._tracker.missing_before(message.signal, message.meta)
        if missing is not None:
            self._repair(*missing)
        self._accept(message, replayed=False)

    def _accept(self, message: wire.EventMessage, replayed: bool) -> None:
        is_new, loss = self._tracker.accept(message.signal, message.meta)
        if loss is not None:
            self._lose(*loss)
        if not is_new:
            return
        if replayed:
            self._counts['replayed'] += 1
        if self._task_wanted(message.task_name):
            self._ready.append(Event.from_message(message, replayed=replayed))

    def _task_wanted(self, task_name: str) -> bool:
        return self.tasks is None or any(
            fnmatch.fnmatchcase(task_name, pattern) for pattern in self.tasks)

    def _take_meta(self, message: wire.MetaMessage) -> None:
        # Other meta topics (``_consumer``, future ones) are for other readers: passed over.
        if message.topic == '_heartbeat':
            self._counts['heartbeats'] += 1
            self._check_epoch(message.data['epoch'])
            behind = self._tracker.behind(message.data)
            if behind is not None:
                self._repair(*behind)
            for loss in self._tracker.settle(message.data):
                self._lose(*loss)
            self._connected = True
        elif message.topic == '_loss':
            count = int(message.data['count'])
            self._counts['publisher_lost'] += count
            logger.warning('publisher %s (host %s pid %s) lost %d events before the broker',
                           message.data.get('pub'), message.data.get('host'),
                           message.data.get('pid'), count)
            self._ready.append(_Notice(self._loss_handlers, (count, None, None)))

    def _check_epoch(self, epoch: int) -> None:
        if self._tracker.change_epoch(epoch):
            self._counts['epoch_changes'] += 1
            logger.warning('broker at %s restarted (new epoch %d); numbering restarts',
                           self.endpoint, epoch)
            self._ready.append(_Notice(self._loss_handlers, (None, None, None)))

    def _lose(self, count: int, first_seq: int, last_seq: int) -> None:
        self._counts['lost'] += count
        logger.warning('%d events lost between seq %d and %d (no longer in the broker ring)',
                       count, first_seq, last_seq)
        self._ready.append(_Notice(self._loss_handlers, (count, first_seq, last_seq)))

    def _repair(self, first_seq: int, last_seq: int) -> None:
        """Fetch ``first_seq..last_seq`` from the ring into the stream, in order."""
        try:
            for message in self._control.replay(first_seq, last_seq):
                if message.meta.epoch == self._tracker.epoch and \
                        self._tracker.wants(message.signal):
                    self._accept(message, replayed=True)
        except (BusError, TimeoutError) as exc:
            logger.warning('could not replay seq %d..%d from %s: %s', first_seq, last_seq,
                           self.control_endpoint, exc)

    # -- silence -------------------------------------------------------------------------

    def _heard(self) -> None:
        ended = self._silence.heard(time.monotonic())
        if ended is not None:
            logger.warning('the broker at %s is heard again after %.1fs of silence',
                           self.endpoint, ended)
            self._ready.append(_Notice(self._silence_handlers, (False, ended)))

    def _check_silence(self) -> None:
        quiet = self._silence.check(time.monotonic())
        if quiet is not None:
            self._counts['silences'] += 1
            logger.warning('no heartbeat from the broker at %s for %.1fs', self.endpoint,
                           quiet)
            self._ready.append(_Notice(self._silence_handlers, (True, quiet)))

    @property
    def heard(self) -> bool:
        """True once the broker has answered (a heartbeat arrived), even if it has since
        gone quiet."""
        return self._connected

    @property
    def silent(self) -> bool:
        """True while the broker has not been heard for ``silence_after`` seconds."""
        return self._silence.silent

    # -- history -------------------------------------------------------------------------

    def replay_recent(self, count: int | None = None, timeout: float = 10.0) -> int:
        """Queue the last ``count`` events of the ring (all of it with None) for delivery
        before the live stream; filters apply. Returns how many were queued."""
        with self._using():
            self.wait_connected(timeout)
            return self._queue_history(count, timeout)

    def _queue_history(self, count: int | None, timeout: float) -> int:
        upto = self._tracker.position()
        first = max(1, upto - count + 1) if count is not None else 1
        ring_first = self.broker_stats(timeout).get('ring_first_seq') or 1
        first = max(first, int(ring_first))
        if count == 0 or first > upto:
            return 0
        queued = {item.seq for item in self._ready if type(item) is Event}
        history = [Event.from_message(message, replayed=True)
                   for message in self._control.replay(first, upto)
                   if self._tracker.wants(message.signal)
                   and self._task_wanted(message.task_name)
                   and message.meta.seq not in queued]
        self._counts['replayed'] += len(history)
        self._ready.extendleft(reversed(history))
        return len(history)

    def broker_stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The broker's ``stats`` answer (received, published, last_seq, ring_first_seq…)."""
        with self._using():
            if self._closed:
                raise BusError('the subscriber is closed')
            return self._control.stats(timeout)

    def stats(self) -> dict[str, int]:
        """Counts so far: ``received`` (live events), ``delivered``, ``lost``, ``replayed``,
        ``epoch_changes``, ``publisher_lost``, ``malformed``, ``heartbeats``, ``silences``."""
        return dict(self._counts, received=self._received, delivered=self._delivered)

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop ``run()``/iteration (from any thread or a handler) and free the sockets."""
        self._closing = True
        # A receiving thread notices the flag within one poll and lets go of the lock;
        # the same thread (a handler, a signal handler) re-enters and leaves the sockets
        # to the receive still running below it.
        with self._busy:
            if self._users == 0:
                self._release()

    @contextlib.contextmanager
    def _using(self) -> Iterator[None]:
        """Mark the sockets in use by this thread; the last user out frees them after
        ``close()`` (which may come from a signal handler in the middle of a poll)."""
        with self._busy:
            self._users += 1
            try:
                yield
            finally:
                self._users -= 1
                if self._users == 0 and self._closing:
                    self._release()

    def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._sub.close(0)
        self._control.close()
        self._context.term()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closing

    def __enter__(self) -> 'Subscriber':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
