"""SequenceTracker, the subscriber's bookkeeping, driven over random drops and ring sizes."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from signal_bus.sequence import SequenceTracker
from signal_bus.wire import EventMeta

EPOCH = 7
SIGNALS = ('complete', 'error', 'enqueued')


def numbered(signals: list[str]) -> list[tuple[str, EventMeta]]:
    """What a broker releases: consecutive seq, sseq counted per signal."""
    counts: dict[str, int] = {}
    stream = []
    for seq, signal in enumerate(signals, start=1):
        counts[signal] = counts.get(signal, 0) + 1
        stream.append((signal, EventMeta(seq, counts[signal], EPOCH)))
    return stream


def heartbeat(stream: list[tuple[str, EventMeta]]) -> dict:
    """The heartbeat a broker sends after ``stream``."""
    last_sseq: dict[str, int] = {}
    for signal, meta in stream:
        last_sseq[signal] = meta.sseq
    return {'epoch': EPOCH, 'last_seq': len(stream), 'last_sseq': last_sseq}


def follow(tracker: SequenceTracker, stream, dropped: set[int], ring: int,
           fast: bool = False, log: list | None = None):
    """Drive the tracker as the subscriber does; return (delivered seqs, lost count).

    With ``fast``, each live event first tries ``take_next`` (the subscriber's short path)
    and takes the repair path only when that declines. ``log`` collects every replay
    asked for and every loss found, with their ranges."""
    delivered, lost = [], 0
    first_in_ring = len(stream) - ring + 1
    log = [] if log is None else log

    def accept(signal, meta):
        nonlocal lost
        is_new, loss = tracker.accept(signal, meta)
        lost += loss[0] if loss else 0
        if loss:
            log.append(('lost', loss))
        if is_new:
            delivered.append(meta.seq)

    def repair(first, last):
        log.append(('replay', first, last))
        for signal, meta in stream[max(first, first_in_ring) - 1:last]:
            if tracker.wants(signal):
                accept(signal, meta)

    tracker.change_epoch(EPOCH)
    tracker.behind(heartbeat([]))  # the answer to the subscription: nothing yet
    for signal, meta in stream:
        if meta.seq in dropped:
            continue
        if fast and tracker.take_next(signal, meta.seq, meta.sseq):
            delivered.append(meta.seq)
            continue
        if not tracker.wants(signal):
            continue
        missing = tracker.missing_before(signal, meta)
        if missing:
            repair(*missing)
        accept(signal, meta)
    final = heartbeat(stream)
    behind = tracker.behind(final)
    if behind:
        repair(*behind)
    settled = tracker.settle(final)
    log.extend(('lost', loss) for loss in settled)
    lost += sum(count for count, _, _ in settled)
    return delivered, lost


@settings(max_examples=200, deadline=None)
@given(signals=st.lists(st.sampled_from(SIGNALS), min_size=1, max_size=60),
       drops=st.sets(st.integers(1, 60)), ring=st.integers(1, 80),
       filtered=st.sampled_from([None, ('complete',), ('complete', 'error')]),
       fast=st.booleans())
def test_every_event_is_delivered_once_or_counted_lost(signals, drops, ring, filtered, fast):
    stream = numbered(signals)
    wanted = [meta.seq for signal, meta in stream if filtered is None or signal in filtered]
    delivered, lost = follow(SequenceTracker(filtered), stream, drops, ring, fast)
    assert len(delivered) == len(set(delivered))
    assert set(delivered) <= set(wanted)
    assert len(delivered) + lost == len(wanted)
    if filtered is None:
        assert delivered == sorted(delivered)  # one global order
    else:
        for signal in filtered:  # each signal in order
            mine = [seq for seq in delivered if stream[seq - 1][0] == signal]
            assert mine == sorted(mine)


def test_a_new_epoch_restarts_numbering_from_zero():
    tracker = SequenceTracker()
    tracker.change_epoch(1)
    assert tracker.accept('complete', EventMeta(41, 41, 1)) == (True, None)
    assert tracker.change_epoch(2) is True
    assert tracker.missing_before('complete', EventMeta(3, 3, 2)) == (1, 2)
    assert tracker.change_epoch(2) is False


@settings(max_examples=200, deadline=None)
@given(signals=st.lists(st.sampled_from(SIGNALS), min_size=1, max_size=60),
       drops=st.sets(st.integers(1, 60)), ring=st.integers(1, 80),
       filtered=st.sampled_from([None, ('complete',), ('complete', 'error')]))
def test_the_short_path_delivers_and_loses_exactly_what_the_repair_path_does(
        signals, drops, ring, filtered):
    stream = numbered(signals)
    short_log: list = []
    long_log: list = []
    assert follow(SequenceTracker(filtered), stream, drops, ring, True, short_log) == \
        follow(SequenceTracker(filtered), stream, drops, ring, False, long_log)
    assert short_log == long_log  # the same replays asked for, the same loss ranges
