"""Child processes: the environment they start with, the signal dispositions they inherit,
a wrapper that runs each in its own session (process group) with its output in a log file,
and what ``/proc`` says about a process."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import IO, Any, Callable, Sequence

from . import REPO_ROOT

#: Signals a launcher may leave ignored or blocked: a shell ignores SIGINT and SIGQUIT in a
#: background job, ``nohup`` ignores SIGHUP. An ignored signal stays ignored across ``exec``,
#: so every process the tests start would inherit it (``signal-tail`` would not stop on
#: SIGINT, a consumer's workers would ignore it).
LAUNCH_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM,
                  signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)


def _still_ignored(signum: int, frame: Any) -> None:
    """Ignores a signal in this process; unlike ``SIG_IGN``, not inherited by ``exec``."""


def reset_launch_signals() -> Callable[[], None]:
    """Make this process start children as if it had been launched from a terminal.

    Each of ``LAUNCH_SIGNALS`` that is ignored here gets a Python handler instead (SIGINT
    Python's usual ``default_int_handler``, the others one that still ignores it), and each
    is unblocked: a handler, unlike ``SIG_IGN``, is reset to the default by ``exec``, so
    every child, whoever starts it, begins with the default disposition. Call in the main
    thread before any child starts; returns a function that puts back what was in place.
    """
    before = {signum: signal.getsignal(signum) for signum in LAUNCH_SIGNALS}
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, LAUNCH_SIGNALS)
    for signum, handler in before.items():
        if handler == signal.SIG_IGN:
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                          else _still_ignored)

    def restore() -> None:
        for signum, handler in before.items():
            if handler is not None:   # None: set outside Python, left as it is now
                signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return restore


def child_env(*paths: str, code_root: str = REPO_ROOT, **extra: str) -> dict[str, str]:
    """The environment of a child: unbuffered output, ``extra`` set, and ``paths`` then
    ``code_root`` (the repository, so the packages import the same way from any working
    directory) first on its ``PYTHONPATH``."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **extra)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (*paths, code_root, os.environ.get('PYTHONPATH')) if p)
    return env


def children_of(pid: int) -> list[int]:
    """Pids of the live children of ``pid``, whichever of its threads started them (from
    ``/proc``; empty when it is gone)."""
    found: list[int] = []
    try:
        for tid in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/children' % (pid, tid)) as handle:
                found += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    return found


def rss_kib(pid: int) -> int:
    """Resident memory of one process in KiB (0 if it is gone)."""
    try:
        with open('/proc/%d/status' % pid) as handle:
            for line in handle:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time one process has used so far."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except OSError:
        return 0.0


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text``."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                line = handle.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


class Child:
    """One command run in a new session (its own process group, so it and everything it
    forks can be signalled or killed as one), its output appended to ``log_path``.

    ``stdout`` other than ``None`` (say ``subprocess.PIPE``) goes there instead, and then
    only standard error goes to the log. ``start()`` may run the command again after it
    ended.
    """

    def __init__(self, name: str, args: Sequence[str], log_path: str = os.devnull,
                 env: dict[str, str] | None = None, cwd: str = REPO_ROOT,
                 stdin: int | IO[Any] | None = subprocess.DEVNULL,
                 stdout: int | IO[Any] | None = None) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.env = env or child_env()
        self.cwd = cwd
        self.stdin = stdin
        self.stdout = stdout
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started = 0.0

    def start(self) -> 'Child':
        """Start the command (again, after it ended)."""
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(
                self.args, cwd=self.cwd, env=self.env, stdin=self.stdin,
                stdout=log if self.stdout is None else self.stdout,
                stderr=subprocess.STDOUT if self.stdout is None else log,
                start_new_session=True)
        self.starts += 1
        self.started = time.monotonic()
        return self

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id), or ``None`` before the start."""
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def send(self, signum: int) -> None:
        """Signal the process itself."""
        if self.alive():
            assert self.proc is not None
            try:
                os.kill(self.proc.pid, signum)
            except ProcessLookupError:
                pass

    def send_group(self, signum: int) -> None:
        """Signal the whole process group (whatever of it is left)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def wait(self, timeout: float) -> int | None:
        """Exit status, or ``None`` if still running after ``timeout`` seconds."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL the whole process group and reap the process."""
        if self.proc is None:
            return
        self.send_group(signal.SIGCONT)   # a stopped process dies only once continued
        self.send_group(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def log_text(self) -> str:
        """What the process logged so far."""
        try:
            with open(self.log_path, errors='replace') as handle:
                return handle.read()
        except FileNotFoundError:
            return ''

    def children(self) -> list[int]:
        """Pids of the process's live children (a consumer's workers)."""
        return children_of(self.pid) if self.pid is not None else []
