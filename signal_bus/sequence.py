"""How a subscriber keeps count of the broker's numbering (``SequenceTracker``: holes,
repairs and losses) and of the broker's silences (``SilenceWatch``). Pure bookkeeping:
nothing here touches a socket or reads a clock."""
from __future__ import annotations

from typing import Any, Mapping

from .wire import EventMeta

Loss = tuple[int, int, int]
"""A loss found in the numbering: ``(count, first_seq, last_seq)``."""


class SequenceTracker:
    """Follows the broker's numbering of one subscriber's stream and finds holes in it.

    Unfiltered, a stream is numbered by ``seq``; filtered by signal, each signal is its
    own stream numbered by ``sseq``. For each stream it keeps the last number accounted
    for and the global ``seq`` up to which that is known, which is where a replay of
    missing events has to start. Pure bookkeeping: it asks nothing of any socket.
    """

    def __init__(self, signals: tuple[str, ...] | None = None) -> None:
        self.signals = signals
        self.epoch: int | None = None
        self._state: dict[str | None, list[int]] = {}
        # After a broker restart numbering starts at 1 again, and everything the new
        # broker released before we noticed it is to be fetched from its ring.
        self._from_zero = False

    def _key(self, signal: str) -> str | None:
        return signal if self.signals is not None else None

    def _number(self, meta: EventMeta) -> int:
        return meta.sseq if self.signals is not None else meta.seq

    def wants(self, signal: str) -> bool:
        """Whether events of ``signal`` belong to this stream at all."""
        return self.signals is None or signal in self.signals

    def change_epoch(self, epoch: int) -> bool:
        """Note the epoch of what arrived; True when it differs from a known one."""
        if self.epoch == epoch:
            return False
        restarted = self.epoch is not None
        self.epoch = epoch
        if restarted:
            self._state.clear()
            self._from_zero = True
        return restarted

    def _position(self, key: str | None, meta: EventMeta) -> list[int]:
        state = self._state.get(key)
        if state is None:
            if self._from_zero:
                state = [0, 0]
            else:
                state = [self._number(meta) - 1, meta.seq - 1]
            self._state[key] = state
        return state

    def missing_before(self, signal: str, meta: EventMeta) -> tuple[int, int] | None:
        """The global ``seq`` range to replay before this event, or None when none is due."""
        last, known_to = self._position(self._key(signal), meta)
        if self._number(meta) > last + 1 and meta.seq - 1 > known_to:
            return known_to + 1, meta.seq - 1
        return None

    def accept(self, signal: str, meta: EventMeta) -> tuple[bool, Loss | None]:
        """Account for an event: (is it new, the loss its number reveals, if any)."""
        state = self._position(self._key(signal), meta)
        number = self._number(meta)
        if number <= state[0]:
            return False, None
        loss = None
        if number > state[0] + 1:
            loss = (number - state[0] - 1, state[1] + 1, meta.seq - 1)
        state[0], state[1] = number, meta.seq
        return True, loss

    def take_next(self, signal: str, seq: int, sseq: int) -> bool:
        """The common case in one step: when the event is exactly the next of a stream
        already under way, account for it and return True; otherwise change nothing and
        return False (``missing_before`` and ``accept`` then decide)."""
        filtered = self.signals is not None
        state = self._state.get(signal if filtered else None)
        number = sseq if filtered else seq
        if state is None or number != state[0] + 1:
            return False
        state[0], state[1] = number, seq
        return True

    def _targets(self, heartbeat: Mapping[str, Any]) -> dict[str | None, int]:
        if self.signals is None:
            return {None: int(heartbeat['last_seq'])}
        last_sseq = heartbeat.get('last_sseq') or {}
        return {signal: int(last_sseq.get(signal, 0)) for signal in self.signals}

    def behind(self, heartbeat: Mapping[str, Any]) -> tuple[int, int] | None:
        """The global range to replay so every stream reaches the heartbeat's numbers."""
        last_seq = int(heartbeat['last_seq'])
        starts = []
        for key, target in self._targets(heartbeat).items():
            state = self._state.get(key)
            if state is None and not self._from_zero:
                self._state[key] = [target, last_seq]
                continue
            state = self._state.setdefault(key, [0, 0])
            if target > state[0] and last_seq > state[1]:
                starts.append(state[1] + 1)
        return (min(starts), last_seq) if starts else None

    def settle(self, heartbeat: Mapping[str, Any]) -> list[Loss]:
        """After any replay: what is still behind the heartbeat is lost; move every
        stream up to the heartbeat's position."""
        last_seq = int(heartbeat['last_seq'])
        losses = []
        for key, target in self._targets(heartbeat).items():
            state = self._state.setdefault(key, [0, 0])
            if target > state[0]:
                losses.append((target - state[0], state[1] + 1, last_seq))
                state[0] = target
            state[1] = max(state[1], last_seq)
        return losses

    def position(self) -> int:
        """The highest global ``seq`` this stream has accounted for (0 before any)."""
        return max((state[1] for state in self._state.values()), default=0)


class SilenceWatch:
    """When the broker was last heard, and whether its silence has been reported.

    Pure bookkeeping: the caller passes the clock (``time.monotonic()`` seconds).
    """

    def __init__(self, after: float, now: float) -> None:
        self.after = after
        self.silent = False
        self._last_heard = now

    def heard(self, now: float) -> float | None:
        """Note a message from the broker; the length of the silence it ends, if any."""
        ended = now - self._last_heard if self.silent else None
        self.silent = False
        self._last_heard = now
        return ended

    def check(self, now: float) -> float | None:
        """Nothing arrived: how long it has been quiet, when a silence begins now."""
        quiet = now - self._last_heard
        if self.silent or quiet < self.after:
            return None
        self.silent = True
        return quiet
