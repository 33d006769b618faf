"""``Subscriber``: follow the broker's event stream as one gap-free, ordered stream.

A subscriber owns a SUB socket on the broker's publish endpoint and, for repairs, a
DEALER socket on its control endpoint; both belong to the thread that receives (the one
running ``run()`` or iterating). When the numbering jumps, the missing events are fetched
from the broker's ring and handed out before anything that arrived after them; what the
ring no longer holds is reported to ``on_loss`` handlers.
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
from .client_events import ErrorInfo, Event, SequenceTracker
from .config import DEFAULT_PUBLISH, CurveClientKeys, neighbour_endpoint
from .exceptions import BusConfigError, BusError, WireError
from .keys import apply_client, client_keys, load_public_key

logger = logging.getLogger('signal_bus.subscriber')

LossHandler = Callable[[Any, Any, Any], Any]
#: How often a blocked receive looks whether ``close()`` was called.
_WAKE_INTERVAL = 0.05


def _name_of(func: Any) -> str:
    return getattr(func, '__qualname__', None) or getattr(func, '__name__', None) or repr(func)


def curve_keys(server_key: bytes | str | None,
               keypair: tuple[bytes | str, bytes | str] | str | None) -> CurveClientKeys | None:
    """Client CURVE material: the broker's public key (Z85 or a ``.key`` file) and our
    pair (``(public, secret)`` in Z85, or a ``.key_secret`` file). Without a pair of our
    own a throwaway one is made, which a broker with an authorized-keys list refuses."""
    if server_key is None:
        if keypair is not None:
            raise BusConfigError('a CURVE key pair needs the broker public key too '
                                 '(curve_server_key / --curve-server-key)')
        return None
    if isinstance(keypair, str):
        return client_keys(server_key, keypair)
    if keypair is None:
        public, secret = zmq.curve_keypair()
    else:
        public, secret = (k.encode('ascii') if isinstance(k, str) else k for k in keypair)
    return CurveClientKeys(server_public=load_public_key(server_key), public=public,
                           secret=secret)


class ControlClient:
    """A DEALER on the broker's control socket: ``stats`` and paged ``replay``.

    Owned by the thread that receives; after a timeout the socket is rebuilt, so a late
    answer to an abandoned request can never be taken for the answer to a new one.
    """

    def __init__(self, context: zmq.Context, endpoint: str, curve: CurveClientKeys | None,
                 timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context
        self._curve = curve
        self._socket: zmq.Socket | None = None

    def _connected(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            apply_client(sock, self._curve)
            sock.connect(self.endpoint)
            self._socket = sock
        return self._socket

    def _receive(self, timeout: float) -> wire.ControlReply:
        sock = self._connected()
        if not sock.poll(int(timeout * 1000)):
            self.close()
            raise TimeoutError('the broker control socket %s did not answer within %.1fs'
                               % (self.endpoint, timeout))
        frames = sock.recv_multipart()
        while len(frames) > 1 and frames[0] == b'':
            frames = frames[1:]  # tolerate a REQ-style empty delimiter
        return wire.decode_control_reply(frames)

    def stats(self, timeout: float | None = None) -> dict[str, Any]:
        """The broker's stats map."""
        self._connected().send(wire.encode_stats_request())
        reply = self._receive(self.timeout if timeout is None else timeout)
        if reply.kind != 'stats':
            raise BusError('the broker answered stats with %r: %s' % (reply.kind, reply.data))
        return reply.data

    def replay(self, first_seq: int, last_seq: int) -> Iterator[wire.EventMessage]:
        """The ring's events from ``first_seq`` to ``last_seq`` (inclusive), page by page."""
        start = first_seq
        while start <= last_seq:
            self._connected().send(wire.encode_replay_request(start, last_seq,
                                                              wire.MAX_REPLAY_LIMIT))
            while True:
                reply = self._receive(self.timeout)
                if reply.kind == 'event' and reply.event is not None:
                    yield reply.event
                elif reply.kind == 'end':
                    break
                else:
                    raise BusError('the broker refused a replay of %d..%d: %s'
                                   % (start, last_seq, reply.data))
            following = int(reply.data['next'])
            if following <= start:
                return
            start = following

    def close(self) -> None:
        """Drop the socket (a new one is made on the next request)."""
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None


class _LossNotice:
    """A loss waiting in the delivery queue, so handlers learn of it in stream order."""

    __slots__ = ('count', 'first_seq', 'last_seq')

    def __init__(self, count: int | None, first_seq: int | None, last_seq: int | None):
        self.count, self.first_seq, self.last_seq = count, first_seq, last_seq


class Subscriber:
    """Receive bus events, repair gaps from the broker's ring, and call handlers.

    ``signals`` limits the stream to those signals (filtered by the broker); ``tasks``
    is a list of globs on the task's registry name (filtered here). ``control`` defaults
    to the publish port + 1 on the same host. ``curve_server_key`` (the broker's public
    key) and ``curve_keypair`` (``(public, secret)``) turn on CURVE encryption.
    """

    def __init__(self, endpoint: str = DEFAULT_PUBLISH, *, control: str | None = None,
                 signals: Iterable[str] | None = None, tasks: Iterable[str] | None = None,
                 curve_server_key: bytes | str | None = None,
                 curve_keypair: tuple[bytes | str, bytes | str] | str | None = None,
                 rcvhwm: int | None = None, replay_timeout: float = 5.0) -> None:
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
        self._curve = curve_keys(curve_server_key, curve_keypair)
        self._context = zmq.Context()
        self._sub = self._open_sub(rcvhwm)
        self._control = ControlClient(self._context, self.control_endpoint, self._curve,
                                      replay_timeout)
        self._dispatcher = SignalDispatcher()
        self._loss_handlers: list[LossHandler] = []
        self._tracker = SequenceTracker(chosen)
        self._ready: collections.deque[Event | _LossNotice] = collections.deque()
        self._counts = dict.fromkeys(('received', 'delivered', 'lost', 'replayed',
                                      'epoch_changes', 'publisher_lost', 'malformed',
                                      'heartbeats'), 0)
        self._connected = False
        self._closing = threading.Event()
        # Held while a thread uses the sockets; _users counts nested uses by that thread.
        self._busy = threading.RLock()
        self._users = 0
        self._closed = False

    def _open_sub(self, rcvhwm: int | None) -> zmq.Socket:
        sock = self._context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        if rcvhwm is not None:
            sock.setsockopt(zmq.RCVHWM, rcvhwm)
        apply_client(sock, self._curve)
        prefixes = [b''] if self.signals is None else [
            wire.signal_prefix(signal) for signal in self.signals]
        for prefix in prefixes + ([wire.META_PREFIX] if self.signals is not None else []):
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            self._context.term()
            raise BusConfigError('cannot connect to publish endpoint %r: %s; give an '
                                 'endpoint like tcp://127.0.0.1:7558' % (self.endpoint, exc))
        return sock

    # -- registration --------------------------------------------------------------------

    def signal(self, *signals: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: call the function as ``handler(signal, task, *extra)`` for events
        of ``signals`` (every signal when none are given). For ``error`` the extra is an
        ``ErrorInfo`` with ``type``, ``message`` and ``traceback``."""
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self._dispatcher.connect(func, *signals)
            return func
        return decorator

    def disconnect_signal(self, receiver: Callable[..., Any], *signals: str) -> None:
        """Unregister a handler from ``signals``, or from everything when none are given."""
        self._dispatcher.disconnect(receiver, *signals)

    def on_loss(self, func: LossHandler | None = None) -> Any:
        """Decorator (with or without parentheses): call ``func(count, first_seq,
        last_seq)`` when events are lost. ``count`` is None after a broker restart;
        ``first_seq``/``last_seq`` are None for events a publisher never delivered."""
        def decorator(handler: LossHandler) -> LossHandler:
            self._loss_handlers.append(handler)
            return handler
        return decorator(func) if func is not None else decorator

    # -- receiving -----------------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Return once the broker has answered the subscription with a heartbeat.

        Events that arrive meanwhile are kept for delivery. Raises ``TimeoutError``
        when no heartbeat comes within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._using():
            while not self._connected:
                remaining = deadline - time.monotonic()
                if self._closing.is_set():
                    raise BusError('the subscriber was closed before it connected')
                if remaining <= 0:
                    raise TimeoutError(
                        'no heartbeat from the broker at %s within %.1fs; is signal-broker '
                        'running and publishing there?' % (self.endpoint, timeout))
                self._pump(min(remaining, _WAKE_INTERVAL))

    def receive(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when ``timeout`` seconds pass or the subscriber closes.

        Loss handlers run here, in stream order, when a loss reaches the head.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._using():
            while not self._closing.is_set():
                while self._ready:
                    item = self._ready.popleft()
                    if isinstance(item, _LossNotice):
                        self._notify_loss(item)
                        continue
                    self._counts['delivered'] += 1
                    return item
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
        try:
            for event in self:
                self.dispatch(event)
        except KeyboardInterrupt:
            logger.info('subscriber interrupted; closing')
        finally:
            self.close()

    def dispatch(self, event: Event) -> None:
        """Call the handlers for ``event``; one that raises is logged and skipped."""
        extra: tuple[Any, ...] = ()
        if event.signal == SIGNAL_ERROR:
            extra = (event.error or ErrorInfo('Exception', ''),)
        for handler in self._dispatcher.handlers_for(event.signal):
            try:
                handler(event.signal, event, *extra)
            except Exception:
                logger.exception('subscriber handler %s raised while handling %r (task %s)',
                                 _name_of(handler), event.signal, event.id)

    def _notify_loss(self, notice: _LossNotice) -> None:
        for handler in self._loss_handlers:
            try:
                handler(notice.count, notice.first_seq, notice.last_seq)
            except Exception:
                logger.exception('loss handler %s raised', _name_of(handler))

    # -- the stream ----------------------------------------------------------------------

    def _pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for one message and take it into the stream."""
        if self._closed or not self._sub.poll(int(timeout * 1000)):
            return
        frames = self._sub.recv_multipart()
        try:
            message = wire.decode_message(frames)
        except WireError as exc:
            self._counts['malformed'] += 1
            logger.warning('dropped a malformed message from %s: %s', self.endpoint, exc)
            return
        if isinstance(message, wire.MetaMessage):
            self._take_meta(message)
        else:
            self._counts['received'] += 1
            self._take_live(message)

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
            self._ready.append(_LossNotice(count, None, None))

    def _check_epoch(self, epoch: int) -> None:
        if self._tracker.change_epoch(epoch):
            self._counts['epoch_changes'] += 1
            logger.warning('broker at %s restarted (new epoch %d); numbering restarts',
                           self.endpoint, epoch)
            self._ready.append(_LossNotice(None, None, None))

    def _lose(self, count: int, first_seq: int, last_seq: int) -> None:
        self._counts['lost'] += count
        logger.warning('%d events lost between seq %d and %d (no longer in the broker ring)',
                       count, first_seq, last_seq)
        self._ready.append(_LossNotice(count, first_seq, last_seq))

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
        queued = {item.seq for item in self._ready if isinstance(item, Event)}
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
        ``epoch_changes``, ``publisher_lost``, ``malformed``, ``heartbeats``."""
        return dict(self._counts)

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop ``run()``/iteration (from any thread or a handler) and free the sockets."""
        self._closing.set()
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
                if self._users == 0 and self._closing.is_set():
                    self._release()

    def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._sub.close(0)
        self._control.close()
        self._context.term()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closing.is_set()

    def __enter__(self) -> 'Subscriber':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
