"""Argument types and option groups shared by the bus's command-line tools."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1, got %s' % text)
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be 0 or more, got %s' % text)
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number of 0 or more."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be 0 or more, got %s' % text)
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0 (seconds, usually)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError('must be a positive number, got %s' % text)
    return value


def add_curve_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``--curve-server-key`` and ``--curve-keypair``, as every bus client takes them.

    Turn the parsed values into keys with ``signal_bus.keys.client_keys(server, pair)``.
    """
    parser.add_argument('--curve-server-key', metavar='FILE_OR_KEY',
                        help="the broker's public key: its NAME.key file or the 40-character "
                             'Z85 text')
    parser.add_argument('--curve-keypair', metavar='FILE',
                        help='this client key pair (a NAME.key_secret file)')
