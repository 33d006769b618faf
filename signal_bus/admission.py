"""Who may connect to the broker: one ZAP handler for CURVE's authorized keys and the
subscriber cap, and the count of connected subscribers (SPEC §7 "Resource ceilings").

A ZeroMQ context has one ZAP handler, so the cap and CURVE share it: the publish socket
has its own ZAP domain, and a handshake in that domain is refused (status 400) while
``max_subscribers`` peers are connected; everything else goes to pyzmq's authenticator
(NULL allowed, CURVE checked against the authorized keys, or any key when none are
given). The count comes from a monitor on the publish socket: an accepted connection
adds its fd, a disconnection removes it (libzmq 4.3's handshake-succeeded event carries no
fd, so peers still in their handshake count too). The ZAP thread reads the monitor before
each decision, so the peer asking is always among those counted and is refused while
more than ``max_subscribers`` connections are open; the broker thread reads it for
``stats`` and with each heartbeat. The two threads share the monitor socket under a lock.
"""
from __future__ import annotations

import logging
import threading

import zmq
from zmq.auth import CURVE_ALLOW_ANY
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import parse_monitor_message

#: The ingest and control sockets' ZAP domain (CURVE only).
ZAP_DOMAIN = 'signal-bus'
#: The publish socket's ZAP domain, always set so that NULL handshakes reach the cap too.
PUBLISH_ZAP_DOMAIN = 'signal-bus-publish'
_PUBLISH_DOMAIN_FRAME = PUBLISH_ZAP_DOMAIN.encode()
_MONITOR_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
_MONITOR_BATCH = 1000

logger = logging.getLogger('signal_bus.broker')


class Admission:
    """The subscriber cap and count of one broker run; ``start()`` in the broker thread
    before binding, ``watch(publish)`` once the publish socket exists, ``stop()`` last."""

    def __init__(self, max_subscribers: int) -> None:
        self.max_subscribers = max_subscribers
        #: Handshakes refused because the cap was reached (written by the ZAP thread).
        self.refused = 0
        self._connected: set[int] = set()
        self._lock = threading.Lock()
        self._auth: _Authenticator | None = None
        self._publish: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None

    @property
    def subscribers(self) -> int:
        """Subscriber peers connected now (as far as the monitor has told)."""
        return len(self._connected)

    def full(self) -> bool:
        """Whether the peer asking ZAP (counted among the connected) must be refused."""
        return len(self._connected) > self.max_subscribers

    def start(self, context: zmq.Context, authorized_keys: str | None) -> None:
        """Start the context's ZAP handler: CURVE checks ``authorized_keys`` (a directory
        of ``*.key`` files) in both domains, or lets any key in when it is None."""
        auth = _Authenticator(context, self, log=logging.getLogger('signal_bus.broker.auth'))
        auth.start()
        self._auth = auth
        if authorized_keys is None:
            auth.configure_curve(domain='*', location=CURVE_ALLOW_ANY)
        else:
            for domain in (ZAP_DOMAIN, PUBLISH_ZAP_DOMAIN):
                auth.configure_curve(domain=domain, location=authorized_keys)

    def watch(self, publish: zmq.Socket) -> None:
        """Monitor ``publish`` (from the broker thread, before serving)."""
        with self._lock:
            self._publish = publish
            self.monitor = publish.get_monitor_socket(_MONITOR_EVENTS)

    def drain_monitor(self) -> None:
        """Apply the monitor events waiting (from either thread)."""
        with self._lock:
            monitor = self.monitor
            if monitor is None:
                return
            for _ in range(_MONITOR_BATCH):
                try:
                    frames = monitor.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                event = parse_monitor_message(frames)
                if event['event'] == zmq.EVENT_ACCEPTED:
                    self._connected.add(event['value'])
                elif event['event'] == zmq.EVENT_DISCONNECTED:
                    self._connected.discard(event['value'])

    def stop(self) -> None:
        """Close the monitor and stop the ZAP handler (before the context ends)."""
        with self._lock:
            if self.monitor is not None:
                if self._publish is not None and not self._publish.closed:
                    self._publish.disable_monitor()
                self.monitor.close(linger=0)
                self.monitor = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._connected.clear()


class _Authenticator(ThreadAuthenticator):
    """pyzmq's authenticator, refusing a subscriber's handshake past the cap."""

    def __init__(self, context: zmq.Context, admission: Admission,
                 log: logging.Logger) -> None:
        super().__init__(context, log=log)
        self._admission = admission

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        """Refuse (400) a publish-domain request while the cap is reached, else defer."""
        admission = self._admission
        if len(msg) >= 6 and msg[2] == _PUBLISH_DOMAIN_FRAME:
            admission.drain_monitor()  # the asking peer's connection is counted now
        if len(msg) >= 6 and msg[2] == _PUBLISH_DOMAIN_FRAME and admission.full():
            admission.refused += 1
            if admission.refused == 1 or admission.refused % 1000 == 0:
                logger.warning('refused a subscriber: %d are connected, --max-subscribers is '
                               '%d; %d refused so far', admission.subscribers - 1,
                               admission.max_subscribers, admission.refused)
            self._send_zap_reply(msg[1], b'400', b'too many subscribers')
            return
        await super().handle_zap_message(msg)
