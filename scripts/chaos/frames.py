"""Hostile input for the broker's ingest: malformed, truncated, oversized and wrong-typed
frames, sent from a raw PUSH socket the way a broken or hostile client would."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import msgpack
import zmq

from signal_bus import wire

WRONG_HEADERS = (
    ['1', 'complete', 'chaos.bad', 'id', 1, 5, 1],          # v is a string
    [2, 'complete', 'chaos.bad', 'id', 1, 5, 1],            # unknown version
    [1, 'no-such-signal', 'chaos.bad', 'id', 1, 5, 1],      # unknown signal
    [1, 7, 'chaos.bad', 'id', 1, 5, 1],                     # signal is a number
    [1, 'complete', None, 'id', 1, 5, 1],                   # task name missing
    [1, 'complete', 'chaos.bad', b'id', 1, 5, 1],           # id is bytes
    [1, 'complete', 'chaos.bad', 'id', 'one', 5, 1],        # tseq is a string
    [1, 'complete', 'chaos.bad', 'id', 1, -5, 1],           # pub is negative
    [1, 'complete', 'chaos.bad', 'id', 1, 5, 0],            # pseq below 1
    [1, 'complete', 'chaos.bad', 'id', 1, 5],               # one item short
    {'v': 1, 'signal': 'complete'},                         # a map, not an array
)


@dataclass
class Batch:
    """The frames of one volley and what the broker must count for them."""

    messages: list[list[bytes]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    expect_malformed: int = 0
    expect_oversized: int = 0

    def add(self, kind: str, frames: list[bytes], oversized: bool = False) -> None:
        """Add one message of ``kind``."""
        self.messages.append(frames)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if oversized:
            self.expect_oversized += 1
        else:
            self.expect_malformed += 1


def _valid(rng: random.Random) -> tuple[bytes, bytes]:
    pub = rng.getrandbits(63) + 1
    header = wire.encode_header('complete', 'chaos.bad', 'bad-%d' % rng.randrange(10**6),
                                1, pub, 1)
    body = wire.encode_body({'signal': 'complete', 'task_id': 'bad', 'task_name': 'chaos.bad',
                             'args': [1, 2, {'x': 'y'}], 'final': True})
    return header, body


def make_batch(rng: random.Random, max_event_bytes: int, per_kind: int) -> Batch:
    """``per_kind`` messages of each kind (oversized: a few, they are big)."""
    batch = Batch()
    for _ in range(per_kind):
        frames = [rng.randbytes(rng.randrange(1, 60)) for _ in range(rng.choice((1, 2, 3)))]
        if len(frames) == 2:
            frames[0] = b'\x01' + frames[0]   # never a valid header by accident
        batch.add('malformed', frames)
        header, body = _valid(rng)
        if rng.random() < 0.5:
            batch.add('truncated', [header[:rng.randrange(len(header))], body])
        else:
            batch.add('truncated', [header, body[:rng.randrange(len(body))]])
        batch.add('wrong-typed', [msgpack.packb(rng.choice(WRONG_HEADERS)), body])
    for _ in range(max(1, per_kind // 10)):
        header, _ = _valid(rng)
        # Each frame fits the ingest socket's cap (--max-event-bytes: a larger frame would
        # only drop the connection); header and body together do not, which the broker
        # counts as oversized.
        blob = bytes(max_event_bytes - 64)
        big = wire.encode_body({'signal': 'complete', 'blob': blob})
        big = wire.encode_body({'signal': 'complete',
                                'blob': blob[:len(blob) - max(0, len(big) - max_event_bytes)]})
        batch.add('oversized', [header, big], oversized=True)
    return batch


def send_batch(ingest: str, batch: Batch) -> None:
    """Push every message of ``batch`` to ``ingest`` and wait for them to leave."""
    context = zmq.Context.instance()
    sock = context.socket(zmq.PUSH)
    sock.linger = 5000
    try:
        sock.connect(ingest)
        for frames in batch.messages:
            sock.send_multipart(frames)
    finally:
        sock.close()
