"""The campaign's table (Markdown, so the same text goes to the terminal and the docs)."""
from __future__ import annotations

from typing import Any

from .reconcile import Result


def _rows(title: str, figures: dict[str, Any]) -> list[str]:
    lines = ['', '| %s | |' % title, '|---|---:|']
    lines += ['| %s | %s |' % (name, value) for name, value in figures.items()]
    return lines


def table(result: Result, header: str) -> str:
    """Tasks, executions, the bus per subscriber, faults injected/survived, and the verdict."""
    lines = [header]
    lines += _rows('tasks', result.tasks)
    lines += _rows('executions', result.executions)
    labels = [account.label for account in result.bus]
    lines += ['', '| bus | %s |' % ' | '.join('subscriber %s' % l for l in labels),
              '|---|%s' % ('---:|' * len(labels))]
    for name, attr in (('events logged', 'events'),
                       ('reported lost: seq ranges gone from the ring (events)', 'reported_seq'),
                       ('reported lost: publisher drops (events)', 'reported_publisher'),
                       ('reported: broker restarts (count unknown)', 'reported_restarts'),
                       ('missing from the log, covered by a report', 'missing_covered'),
                       ('missing from the log, unreported', 'missing_unreported')):
        lines.append('| %s | %s |' % (name, ' | '.join(
            str(getattr(account, attr)) for account in result.bus)))
    lines += ['', '| fault | injected | survived |', '|---|---:|---:|']
    lines += ['| %s | %d | %d |' % (name, injected, survived)
              for name, (injected, survived) in result.faults.items()]
    verdict = 'PASS' if result.passed else 'FAIL'
    lines += ['', '%s: %d vanished, %d unreported losses, %d unexplained duplicates' % (
        verdict, len(result.vanished), result.unreported, len(result.unexplained_duplicates))]
    for account in result.bus:
        for example in account.examples:
            lines.append('  unreported on subscriber %s: %s' % (account.label, example))
    for line in result.diagnosis[:20]:
        lines.append('  vanished: %s' % line)
    for task_id in result.unexplained_duplicates[:10]:
        lines.append('  ran twice without INTERRUPTED: %s' % task_id)
    return '\n'.join(lines)
