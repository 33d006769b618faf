"""The abusive-clients phase's CI form (``scripts/chaos.py --abuse --short``): a real
``signal-broker`` under subscribers that never read, a subscription flood, events near the
size limit, replay requests never read, fuzzed control requests and connection churn. It
asserts that the broker lived and answered ``stats`` after each attack, stayed under its
memory ceiling, and that the healthy subscriber saw every healthy event or a counted loss;
and that no child process is left."""
from __future__ import annotations

import os
import subprocess
import sys

from scripts.chaos.attacks import ATTACKS
from scripts.support import SCRIPTS_DIR
from scripts.support.procs import processes_mentioning


SCRIPT = os.path.join(SCRIPTS_DIR, 'chaos.py')


def test_the_broker_survives_abusive_clients_under_its_ceiling(tmp_path):
    workdir = tmp_path / 'abuse'
    proc = subprocess.run([sys.executable, SCRIPT, '--abuse', '--short', '--workdir',
                           str(workdir)], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=240)
    report = proc.stdout + '\n' + proc.stderr[-3000:]
    assert proc.returncode == 0, report
    for attack in ATTACKS:
        row = [line for line in proc.stdout.splitlines() if line.startswith('| %s |' % attack)]
        assert len(row) == 1 and row[0].split(' | ')[3:5] == ['yes', 'yes'], report
    assert 'Healthy subscriber: ran throughout' in proc.stdout, report
    assert 'Verdict: PASS' in proc.stdout, report
    assert processes_mentioning(str(workdir)) == []
