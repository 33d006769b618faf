"""The campaign's short form (``scripts/chaos.py --short``): every fault once against a
real consumer, Redis, broker and two subscribers, then the reconciliation. It asserts the
invariants only: no task vanished, no loss went unreported, no task ran twice without an
INTERRUPTED; and that every child process is gone afterwards."""
from __future__ import annotations

import os
import subprocess
import sys

from scripts.chaos.injectors import INJECTORS
from scripts.support import SCRIPTS_DIR
from scripts.support.procs import processes_mentioning

SCRIPT = os.path.join(SCRIPTS_DIR, 'chaos.py')


def test_short_campaign_loses_nothing_and_lets_no_loss_go_unreported(tmp_path):
    workdir = tmp_path / 'chaos'
    proc = subprocess.run([sys.executable, SCRIPT, '--short', '--seed', '1', '--workdir',
                           str(workdir)], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=240)
    report = proc.stdout + '\n' + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    assert 'PASS: 0 vanished, 0 unreported losses, 0 unexplained duplicates' in proc.stdout
    for row in ('| tasks vanished | 0 |', '| unexplained duplicate executions | 0 |',
                '| missing from the log, unreported | 0 | 0 |'):
        assert row in proc.stdout, report
    for fault in INJECTORS:                # each fault injected once, and survived
        assert '| %s | 1 | 1 |' % fault in proc.stdout, report
    assert processes_mentioning(str(workdir)) == []
