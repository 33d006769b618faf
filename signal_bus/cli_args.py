"""Option groups shared by the bus's command-line tools (argument types: queue_core.argtypes)."""
from __future__ import annotations

import argparse


def add_curve_client_arguments(parser: argparse.ArgumentParser) -> None:
    """``--curve-server-key`` and ``--curve-keypair``, as every bus client takes them.

    Turn the parsed values into keys with ``signal_bus.keys.client_keys(server, pair)``.
    """
    parser.add_argument('--curve-server-key', metavar='FILE_OR_KEY',
                        help="the broker's public key: its NAME.key file or the 40-character "
                             'Z85 text')
    parser.add_argument('--curve-keypair', metavar='FILE',
                        help='this client key pair (a NAME.key_secret file)')
