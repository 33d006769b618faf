"""The suite does not depend on how it was launched: started with SIGINT ignored (``nohup``,
``cmd &``) or signals blocked, every process it starts still begins with the default
dispositions, and at the end the suite's own dispositions are what was in place."""
from __future__ import annotations

import signal
import subprocess

from scripts.support.procs import LAUNCH_SIGNALS, reset_launch_signals


def signal_set(pid: int, field: str) -> set[int]:
    """The signals in ``SigIgn``/``SigBlk``/... of ``/proc/PID/status``."""
    with open('/proc/%d/status' % pid) as handle:
        line = next(row for row in handle if row.startswith(field + ':'))
    mask = int(line.split()[1], 16)
    return {signum for signum in range(1, 65) if mask & (1 << (signum - 1))}


def child_dispositions() -> tuple[set[int], set[int]]:
    """``(ignored, blocked)`` among ``LAUNCH_SIGNALS`` of a child that changes none of them
    (``cat`` waiting on its stdin), as it starts."""
    child = subprocess.Popen(['cat'], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        return (signal_set(child.pid, 'SigIgn') & set(LAUNCH_SIGNALS),
                signal_set(child.pid, 'SigBlk') & set(LAUNCH_SIGNALS))
    finally:
        child.communicate(timeout=10)


def test_children_of_the_suite_start_with_no_launch_signal_ignored_or_blocked():
    assert child_dispositions() == (set(), set())


def test_reset_gives_children_defaults_and_restore_puts_back_what_was_in_place():
    outer = {signum: signal.getsignal(signum) for signum in LAUNCH_SIGNALS}
    outer_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        # As a background job started by a shell, under nohup, with SIGUSR1 blocked.
        for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
        launched = {signum: signal.getsignal(signum) for signum in LAUNCH_SIGNALS}
        launched_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert child_dispositions() == ({signal.SIGINT, signal.SIGQUIT, signal.SIGHUP},
                                        {signal.SIGUSR1})

        restore = reset_launch_signals()
        assert child_dispositions() == (set(), set())
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_IGN, signal.SIG_DFL)

        restore()
        assert {signum: signal.getsignal(signum) for signum in LAUNCH_SIGNALS} == launched
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == launched_mask
    finally:
        for signum, handler in outer.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, outer_mask)
