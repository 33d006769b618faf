"""Hostile input over a real socket: the broker counts it, drops it, and keeps serving."""
from __future__ import annotations

import random


from signal_bus import wire

from scripts.support.polling import wait_until
from tests.signal_bus.bus_helpers import body_of


def _hostile_messages(rng: random.Random, count: int) -> list[list[bytes]]:
    valid_header = wire.encode_header('complete', 'app.t', 'id', 1, 5, 1)
    valid_body = wire.encode_body({'signal': 'complete', 'args': [1, {'a': 'b'}]})
    messages = []
    for _ in range(count):
        kind = rng.randrange(5)
        if kind == 0:      # random frames, random count
            messages.append([rng.randbytes(rng.randrange(40)) for _ in range(rng.randrange(1, 5))])
        elif kind == 1:    # a truncated valid frame
            cut = rng.randrange(len(valid_header))
            messages.append([valid_header[:cut], valid_body])
        elif kind == 2:
            messages.append([valid_header, valid_body[:rng.randrange(len(valid_body))]])
        elif kind == 3:    # one byte of a valid message changed
            header = bytearray(valid_header)
            header[rng.randrange(len(header))] = rng.randrange(256)
            messages.append([bytes(header), valid_body])
        else:              # nesting far deeper than any decoder stack
            messages.append([valid_header, b'\x81\xa1k' * rng.randrange(1000, 5000) + b'\x01'])
    return messages


def _events_in(frames: list[bytes]) -> int:
    """How many events the broker counts for one message: a pair per two frames of an
    even message (a batch), one for anything else (a one-frame message that is a map is
    a ``_consumer`` meta message, counted apart)."""
    return len(frames) // 2 if len(frames) % 2 == 0 else 1


def test_random_and_mutated_frames_never_stop_the_broker(raw_sub, pusher_factory, control):
    pusher = pusher_factory()
    messages = _hostile_messages(random.Random(20240611), 400)
    for frames in messages:
        pusher.raw(frames)
    pusher.send('complete', 'still-alive', None)
    expected = sum(_events_in(frames) for frames in messages) + 1

    def settled():
        stats = control.stats()
        done = (stats['received'] + stats['consumer_meta'] == expected
                and stats['held'] == 0)
        return stats if done else None

    stats = wait_until(settled, message='every message to be handled')
    assert stats['received'] == stats['malformed'] + stats['oversized'] + stats['published']
    assert stats['malformed'] > 300 and stats['internal_errors'] == 0
    ids = [body_of(event).get('task_id') for event in raw_sub.events(stats['published'])]
    assert ids[-1] == 'still-alive'


def test_a_frame_over_the_zeromq_cap_costs_only_its_sender(raw_sub, pusher_factory, control):
    giant = pusher_factory()
    giant.raw([wire.encode_header('complete', 'app.t', 'huge', None, 1, 1),
               b'\xc6' + (17 * 1024 * 1024).to_bytes(4, 'big') + bytes(17 * 1024 * 1024)])
    normal = pusher_factory()      # kept referenced: a collected socket drops its queue
    normal.send('complete', 'normal', None)
    assert body_of(raw_sub.events(1)[0])['task_id'] == 'normal'
    stats = control.stats()
    assert (stats['received'], stats['published'], stats['oversized']) == (1, 1, 0)
