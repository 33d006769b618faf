"""Option groups and argument types shared by the bus's command-line tools (number types:
queue_core.argtypes)."""
from __future__ import annotations

import argparse

from .config import check_endpoint
from .exceptions import BusConfigError


def add_curve_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``--curve-server-key`` and ``--curve-keypair``, as every bus client takes them.

    Turn the parsed values into keys with ``signal_bus.keys.client_keys(server, pair)``.
    """
    parser.add_argument('--curve-server-key', metavar='FILE_OR_KEY',
                        help="the broker's public key: its NAME.key file or the 40-character "
                             'Z85 text')
    parser.add_argument('--curve-keypair', metavar='FILE',
                        help='this client key pair (a NAME.key_secret file)')


def endpoint(text: str) -> str:
    """argparse type of a ZeroMQ endpoint; ``host:port`` without a transport is refused
    with the fix spelled out (``tcp://host:port``)."""
    if '://' not in text:
        raise argparse.ArgumentTypeError(
            '%r has no transport: add tcp:// (tcp://%s)' % (text, text))
    try:
        return check_endpoint(text, 'the')
    except BusConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
