"""The reference relay of the broker benchmark: the least a Python broker can do per event.

A plain loop: PULL ``recv_multipart`` of the publishers' two-frame messages, PUB
``send_multipart`` of three frames (the topic from the header, a fixed meta frame, the
body). No ordering, numbering, ring or loss accounting. It answers nothing on a control
socket, so publishers never send it batches. Runs until SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import signal

import msgpack
import zmq

META = msgpack.packb({'seq': 1, 'sseq': 1, 'epoch': 1})


def main() -> None:
    """Relay from ``--ingest`` to ``--publish`` until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ingest', required=True)
    parser.add_argument('--publish', required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    context = zmq.Context()
    pull, pub = context.socket(zmq.PULL), context.socket(zmq.PUB)
    pub.sndhwm = 100_000
    pull.bind(args.ingest)
    pub.bind(args.publish)
    try:
        while True:
            header, body = pull.recv_multipart()
            fields = msgpack.unpackb(header)
            pub.send_multipart([('%s\x00%s' % (fields[1], fields[2])).encode(), META, body])
    except KeyboardInterrupt:
        pass
    finally:
        pull.close(0)
        pub.close(0)
        context.term()


if __name__ == '__main__':
    main()
