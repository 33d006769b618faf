"""Saying so when a broker refuses a client's handshake (SPEC §7 "Failures are visible").

ZeroMQ retries a refused connection quietly forever, so a client with a wrong or
unauthorised CURVE key would publish into nothing without a word. ``watch_handshake``
reads the socket's monitor in a small daemon thread and logs one line at the first
refusal; it ends by itself when the socket is closed.

Call it in the thread that owns the socket, right after the socket is made (before or
after ``connect``)::

    sock = context.socket(zmq.PUSH)
    apply_client(sock, keys)
    watch_handshake(sock, endpoint, 'publisher')
    sock.connect(endpoint)
"""
from __future__ import annotations

import logging
import threading

import zmq
from zmq.utils.monitor import recv_monitor_message

logger = logging.getLogger('signal_bus.handshake')

#: The refusal events and what each one means to the person reading the log.
REFUSALS: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: 'the broker refused this client\'s key (add its public '
                                     'key to the broker\'s authorised keys)',
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: 'the security settings do not match (CURVE on one '
                                         'side only, or a different mechanism)',
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: 'the broker closed the connection during the '
                                          'handshake (is the server key the broker\'s '
                                          'public key?)',
}
_EVENTS = zmq.EVENT_MONITOR_STOPPED
for _event in REFUSALS:
    _EVENTS |= _event


def watch_handshake(sock: zmq.Socket, endpoint: str, what: str = 'client',
                    log: logging.Logger | None = None) -> threading.Thread:
    """Log one error line (on ``log``) the first time the peer at ``endpoint`` refuses
    ``sock``'s handshake; ``what`` names the client in that line. Returns the watching
    thread (a daemon that ends when ``sock`` is closed)."""
    monitor = sock.get_monitor_socket(_EVENTS)
    thread = threading.Thread(target=_watch, args=(monitor, endpoint, what, log or logger),
                              name='handshake-watch', daemon=True)
    thread.start()
    return thread


def _watch(monitor: zmq.Socket, endpoint: str, what: str, log: logging.Logger) -> None:
    """The watching thread: owns ``monitor`` until the watched socket is closed."""
    told = False
    try:
        while True:
            try:
                event = recv_monitor_message(monitor)
            except (zmq.ContextTerminated, zmq.ZMQError):
                return
            if event['event'] == zmq.EVENT_MONITOR_STOPPED:
                return
            if not told and event['event'] in REFUSALS:
                told = True
                log.error('%s: handshake with %s refused: %s', what, endpoint,
                          REFUSALS[event['event']])
    finally:
        monitor.close(linger=0)
