"""What every benchmark shares: a private Redis, consumers as real subprocesses, process
memory, alternating rounds, medians and the figures that become the table.

Benchmarks run from this directory's parent's view: the apps they drive live in
``scripts/bench/apps`` and consumers are started with ``scripts/bench`` as their working
directory, so ``apps.ours.queue`` and ``apps.huey_app.huey`` import as a user's app would.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterable, Sequence

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(BENCH_DIR))
OURS, HUEY = 'ours', 'huey'
HUEY_VERSION = '3.5.4'


def log(message: str, *args: Any) -> None:
    """Progress on standard error (standard output is for the figures)."""
    print('[bench %s] %s' % (time.strftime('%H:%M:%S'), message % args if args else message),
          file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def consecutive_free_ports(count: int, attempts: int = 50) -> list[int]:
    """``count`` consecutive loopback ports that were free a moment ago (a broker's
    default layout: ingest, publish, control on three ports in a row)."""
    for _ in range(attempts):
        first = free_port()
        ports = list(range(first, first + count))
        socks = []
        try:
            for port in ports:
                sock = socket.socket()
                socks.append(sock)
                sock.bind(('127.0.0.1', port))
            return ports
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError('found no %d consecutive free ports' % count)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.005) -> Any:
    """Poll ``predicate`` until it is truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError('gave up after %.0f s waiting for %s' % (timeout, what))
        time.sleep(interval)


# -- Redis ---------------------------------------------------------------------------------

class RedisProcess:
    """A private ``redis-server`` on a free loopback port, no persistence."""

    def __init__(self) -> None:
        binary = shutil.which('redis-server')
        if binary is None:
            raise RuntimeError('redis-server is not installed; run scripts/setup.sh')
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='bench-redis-')
        self.proc = subprocess.Popen(
            [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--dir', self.dir,
             '--save', '', '--appendonly', 'no', '--daemonize', 'no',
             '--logfile', os.path.join(self.dir, 'redis.log')],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, 10, 'redis-server on port %d' % self.port, 0.02)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return 'redis://127.0.0.1:%d/0' % self.port

    def _answers(self) -> bool:
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=0.5) as sock:
                sock.sendall(b'PING\r\n')
                return sock.recv(16).startswith(b'+PONG')
        except OSError:
            return False

    def flushall(self) -> None:
        """Empty this private server."""
        import redis
        client = redis.Redis(port=self.port)
        client.flushall()
        client.close()

    def command_stats(self) -> dict[str, int]:
        """Calls per Redis command since the last ``reset_stats`` (``INFO commandstats``)."""
        import redis
        client = redis.Redis(port=self.port)
        info = client.info('commandstats')
        client.close()
        return {name.replace('cmdstat_', ''): int(value['calls']) for name, value in info.items()}

    def reset_stats(self) -> None:
        """Zero the server's command counters."""
        import redis
        client = redis.Redis(port=self.port)
        client.config_resetstat()
        client.close()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> 'RedisProcess':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# -- subprocesses ------------------------------------------------------------------------

def bench_env(redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a child: apps importable, the repository first on the path."""
    env = dict(os.environ)
    # BENCH_CODE_ROOT runs the children against another checkout of the packages.
    code_root = env.get('BENCH_CODE_ROOT') or REPO_ROOT
    env['PYTHONPATH'] = os.pathsep.join(p for p in (BENCH_DIR, code_root,
                                                    env.get('PYTHONPATH')) if p)
    env['PYTHONUNBUFFERED'] = '1'
    if redis_url is not None:
        env['BENCH_REDIS_URL'] = redis_url
    env.update(extra)
    return env


def consumer_command(side: str, workers: int, bus: str | None = None) -> list[str]:
    """How a user starts each consumer: ours via its CLI, Huey via ``huey_consumer.py``."""
    if side == OURS:
        command = [sys.executable, '-m', 'queue_core.cli', 'apps.ours.queue',
                   '-w', str(workers), '-k', 'process', '-q']
        return command + (['--bus', bus] if bus else [])
    if bus:
        raise ValueError('Huey has no signal bus')
    import huey
    script = os.path.join(os.path.dirname(huey.__file__), 'bin', 'huey_consumer.py')
    return [sys.executable, script, 'apps.huey_app.huey', '-w', str(workers), '-k', 'process',
            '-q']


class Child:
    """A subprocess in its own session (so its whole group can be stopped), logging to a
    temporary file that is shown when something goes wrong."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None,
                 stdin: int | None = None, stdout: int | None = None) -> None:
        self.command = list(command)
        self.logfile = tempfile.NamedTemporaryFile(prefix='bench-child-', suffix='.log',
                                                   delete=False)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.command, cwd=BENCH_DIR, env=env or bench_env(),
                                     stdin=stdin, stdout=stdout or self.logfile,
                                     stderr=self.logfile, start_new_session=True)

    @staticmethod
    def cwd() -> str:
        """Where children run: the benchmark directory, so ``apps.*`` imports."""
        return BENCH_DIR

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise (with the child's log) if it has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError('%s exited with status %s:\n%s'
                               % (' '.join(self.command), self.proc.returncode, self.log()))

    def log(self) -> str:
        """The last part of what the child wrote to its log."""
        with open(self.logfile.name, 'rb') as handle:
            return handle.read()[-4000:].decode('utf-8', 'replace')

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int | None:
        """Send ``sig`` to the child's process group; kill the group if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        # Whatever of the group survived its leader (workers of a killed consumer).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.logfile.close()
        os.unlink(self.logfile.name)
        return self.proc.returncode


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc``)."""
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


# -- rounds and statistics --------------------------------------------------------------

def alternate(rounds: int, runners: dict[str, Callable[[], Any]]) -> dict[str, list[Any]]:
    """Run each runner once per round, alternating which goes first, and collect results."""
    names = list(runners)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for index in range(rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            log('round %d/%d: %s', index + 1, rounds, name)
            results[name].append(runners[name]())
    return results


def median(values: Iterable[float]) -> float:
    """The median of ``values``."""
    return float(statistics.median(list(values)))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return float(ordered[index])


def median_of(records: Sequence[dict[str, Any]], key: str) -> float:
    """The median of one key over a list of per-round result maps."""
    return median(record[key] for record in records)


# -- figures ----------------------------------------------------------------------------

@dataclasses.dataclass
class Figure:
    """One line of the table: a measurement of ours, the reference it is compared with
    (Huey's figure, or ours in a baseline mode), and how the ratio meets the target."""

    bench: str
    metric: str
    unit: str
    ours: float
    ref: float | None = None
    ratio: float | None = None
    ratio_of: str = 'ours / Huey'
    ref_label: str = 'Huey 3.5.4'
    target: str = ''
    met: bool | None = None
    note: str = ''

    def line(self) -> str:
        """One line for the terminal."""
        parts = ['%-10s %-44s ours %s %s' % (self.bench, self.metric, fmt(self.ours), self.unit)]
        if self.ref is not None:
            parts.append('%s %s' % (self.ref_label, fmt(self.ref)))
        if self.ratio is not None:
            parts.append('ratio %.2fx (%s)' % (self.ratio, self.ratio_of))
        if self.target:
            parts.append('target %s: %s' % (self.target, verdict(self.met)))
        return ' | '.join(parts)


def fmt(value: float | None) -> str:
    """A number with sensible precision for the table."""
    if value is None:
        return '—'
    if value >= 1000:
        return '{:,.0f}'.format(value)
    if value >= 10:
        return '%.1f' % value
    return '%.2f' % value


def verdict(met: bool | None) -> str:
    """'met', 'NOT met' or '—'."""
    return '—' if met is None else 'met' if met else 'NOT met'


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    """The median of the per-round ratios ``a[i] / b[i]`` (rounds run back to back, so a
    slow spell on the machine hits both), and the ratios themselves for the note."""
    ratios = [x / y for x, y in zip(a, b) if y]
    if not ratios:
        return float('inf'), 'no rounds'
    return median(ratios), 'per-round ratios: ' + ', '.join('%.2f' % r for r in ratios)


def ratio(a: float, b: float) -> float:
    """``a / b``, or infinity when ``b`` is zero."""
    return a / b if b else float('inf')
