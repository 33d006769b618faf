"""The consumer's settings: one frozen dataclass, built by the CLI or by hand."""
from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import ConfigurationError

WORKER_PROCESS = 'process'
WORKER_THREAD = 'thread'
WORKER_TYPES = (WORKER_PROCESS, WORKER_THREAD)
#: Tasks a worker claims at once by default (chosen by scripts/bench/drain.py).
DEFAULT_PREFETCH = 16
MAX_PREFETCH = 1000
GRACEFUL_SIGNALS = ('INT', 'TERM')


@dataclass(frozen=True)
class ConsumerConfig:
    """Everything the supervisor, its workers and its scheduler need to know.

    Times are in seconds. ``health_check_interval`` of ``None`` turns the stuck-worker
    check off (dead workers are always replaced). ``shutdown_timeout`` of ``None`` lets a
    graceful stop wait for running tasks as long as they take.
    """

    workers: int = 1
    worker_type: str = WORKER_PROCESS
    bus: str | None = None
    #: CURVE for ``bus``: the broker's public key (file or Z85) and this client's pair file.
    curve_server_key: str | None = None
    curve_keypair: str | None = None
    broker: bool = False
    periodic: bool = True
    scheduler_interval: float = 1.0
    health_check_interval: float | None = 10.0
    lease: float = 30.0
    requeue_interrupted: bool = False
    flush_locks: bool = False
    #: Names of further locks to flush at start (Huey's ``-L``), besides the tasks' own.
    extra_locks: tuple[str, ...] = ()
    max_tasks: int | None = None
    #: Tasks a worker claims per storage call (SPEC §5 "Prefetch"; 1 turns it off).
    prefetch: int = DEFAULT_PREFETCH
    #: Longest a prefetched task waits in a worker's hand before it is handed back.
    prefetch_hold: float = 0.1
    shutdown_timeout: float | None = None
    #: Longest single wait for work, so a stop request is noticed promptly.
    poll_interval: float = 1.0
    #: Storage-outage backoff: first delay and cap, doubling in between.
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    #: Growth of that delay from one failure to the next (Huey's ``-b``; at least 1).
    backoff_factor: float = 2.0
    #: The signal that stops gracefully, ``'INT'`` or ``'TERM'``; the other one stops at
    #: once (Huey's ``-g``).
    graceful_signal: str = 'INT'

    def __post_init__(self) -> None:
        problems = []
        if self.workers < 1:
            problems.append('workers must be at least 1 (got %r)' % (self.workers,))
        if self.worker_type not in WORKER_TYPES:
            problems.append('worker type must be one of %s (got %r)'
                            % (', '.join(WORKER_TYPES), self.worker_type))
        for name in ('scheduler_interval', 'lease', 'poll_interval', 'backoff_initial',
                     'backoff_max', 'prefetch_hold'):
            if getattr(self, name) <= 0:
                problems.append('%s must be positive (got %r)' % (name, getattr(self, name)))
        for name in ('health_check_interval', 'shutdown_timeout'):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append('%s must not be negative (got %r)' % (name, value))
        if self.backoff_factor < 1:
            problems.append('backoff factor must be at least 1 (got %r)'
                            % (self.backoff_factor,))
        if self.graceful_signal not in GRACEFUL_SIGNALS:
            problems.append('graceful signal must be INT or TERM (got %r)'
                            % (self.graceful_signal,))
        if not 1 <= self.prefetch <= MAX_PREFETCH:
            problems.append('prefetch must be between 1 and %d (got %r)'
                            % (MAX_PREFETCH, self.prefetch))
        if self.max_tasks is not None and self.max_tasks < 1:
            problems.append('max_tasks must be at least 1 (got %r)' % (self.max_tasks,))
        if problems:
            raise ConfigurationError('; '.join(problems))

    @property
    def renew_interval(self) -> float:
        """How often leases are renewed and expired leases swept: a third of the lease."""
        return self.lease / 3.0
