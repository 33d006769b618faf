"""Option groups and argument types shared by the bus's command-line tools."""
from __future__ import annotations

import argparse
from typing import Callable

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


class Number:
    """An argparse type: a number made by ``kind`` (``int``, ``float``) of at least
    ``lowest``, or above it when ``strict``; anything else is refused saying what it must
    be."""

    def __init__(self, kind: Callable[[str], float], lowest: float, strict: bool,
                 wording: str) -> None:
        self.kind, self.lowest, self.strict, self.wording = kind, lowest, strict, wording
        self.__name__ = kind.__name__  # argparse names the type in its messages

    def __call__(self, text: str) -> float:
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError('must be %s, got %r'
                                             % (self.wording, text)) from None
        if value < self.lowest or (self.strict and value == self.lowest):
            raise argparse.ArgumentTypeError('must be %s, got %s' % (self.wording, text))
        return value


#: A whole number of at least 1.
positive_int = Number(int, 1, False, 'a whole number of at least 1')
#: A whole number of 0 or more.
non_negative_int = Number(int, 0, False, 'a whole number of 0 or more')
#: A number above 0 (seconds, usually).
positive_float = Number(float, 0.0, True, 'a positive number')
#: A number of 0 or more.
non_negative_float = Number(float, 0.0, False, 'a number of 0 or more')
