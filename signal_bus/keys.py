"""CURVE keys for a bus that crosses hosts: generate, load, and apply them to sockets.

Key files are ZeroMQ certificates as ``zmq.auth.create_certificates`` writes them:
``NAME.key`` holds the public key (share it), ``NAME.key_secret`` the pair (keep it).
Generate a pair from the shell with ``signal-keys DIRECTORY NAME``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import zmq
import zmq.auth

from .config import CurveClientKeys
from .exceptions import BusConfigError

Z85_KEY_LENGTH = 40


def generate_keypair(directory: str, name: str) -> tuple[str, str]:
    """Write ``NAME.key`` and ``NAME.key_secret`` into ``directory``; return both paths."""
    os.makedirs(directory, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(directory, name)
    os.chmod(secret_file, 0o600)  # the pair is a secret: readable by its owner only
    return str(public_file), str(secret_file)


def load_public_key(source: str | bytes) -> bytes:
    """A Z85 public key from a certificate file or given literally (40 characters)."""
    if isinstance(source, bytes):
        source = source.decode('ascii', 'replace')
    if os.path.isfile(os.path.expanduser(source)):
        source = os.path.expanduser(source)
        try:
            public, _ = zmq.auth.load_certificate(source)
        except Exception as exc:
            raise BusConfigError('cannot read a public key from %s: %s' % (source, exc)) from None
        return public
    if len(source) == Z85_KEY_LENGTH:
        return source.encode('ascii')
    raise BusConfigError('%r is neither a key file nor a 40-character Z85 key; generate one '
                         'with: signal-keys DIR NAME' % (source,))


def load_keypair(path: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``.key_secret`` certificate file."""
    path = os.path.expanduser(path)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except Exception as exc:
        raise BusConfigError('cannot read a key pair from %s: %s' % (path, exc)) from None
    if not secret:
        raise BusConfigError('%s holds no secret key: give the NAME.key_secret file' % path)
    return public, secret


def client_keys(server_key: str | bytes | None,
                keypair: str | tuple[bytes | str, bytes | str] | None) -> CurveClientKeys | None:
    """Client CURVE material, the one loader every bus client uses: the broker's public
    key (Z85 text or its ``NAME.key`` file) and this client's pair (a ``NAME.key_secret``
    file or a ``(public, secret)`` tuple in Z85).

    Neither: no CURVE (``None``). A pair needs the broker's key. The broker's key alone
    gets a throwaway pair: encrypted, and accepted by a broker without an authorized-keys
    list, refused by one with a list.
    """
    if server_key is None:
        if keypair is not None:
            raise BusConfigError('a CURVE key pair needs the broker public key too '
                                 '(--curve-server-key, or curve_server_key=)')
        return None
    if keypair is None:
        public, secret = zmq.curve_keypair()
    elif isinstance(keypair, str):
        public, secret = load_keypair(keypair)
    else:
        public, secret = (k.encode('ascii') if isinstance(k, str) else k for k in keypair)
    return CurveClientKeys(server_public=load_public_key(server_key), public=public,
                           secret=secret)


def apply_client(socket: zmq.Socket, keys: CurveClientKeys | None) -> None:
    """Make ``socket`` a CURVE client (before it connects); no-op without keys."""
    if keys is None:
        return
    socket.curve_serverkey = keys.server_public
    socket.curve_publickey = keys.public
    socket.curve_secretkey = keys.secret


def apply_server(socket: zmq.Socket, keypair: tuple[bytes, bytes] | None) -> None:
    """Make ``socket`` a CURVE server (before it binds); no-op without a pair."""
    if keypair is None:
        return
    socket.curve_publickey, socket.curve_secretkey = keypair
    socket.curve_server = True


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``signal-keys`` (also ``python -m signal_bus.keys``)."""
    parser = argparse.ArgumentParser(
        prog='signal-keys',
        description='Generate a CURVE key pair for the signal bus.')
    parser.add_argument('directory', help='where to write NAME.key and NAME.key_secret')
    parser.add_argument('name', help='base name of the key files, e.g. broker or worker1')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Generate a key pair and print the two paths; 0 on success, 1 if it cannot be
    written."""
    args = build_parser().parse_args(argv)
    try:
        public_file, secret_file = generate_keypair(args.directory, args.name)
    except OSError as exc:
        print('signal-keys: cannot write a key pair into %s: %s'
              % (args.directory, exc.strerror or exc), file=sys.stderr)
        return 1
    print('public key: %s\nkey pair:   %s' % (public_file, secret_file))
    return 0


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == '__main__':  # pragma: no cover
    entry_point()
