"""Every collected test carries the tier of its path, so ``-m "not end_to_end and not fault
and not slow"`` leaves only in-process tests, and the known failure is skipped unless asked
for."""
from __future__ import annotations

from pathlib import Path

TIER_MARKS = ('end_to_end', 'fault', 'slow')
TESTS = Path(__file__).resolve().parent


def tiers(item) -> set[str]:
    return {mark for mark in TIER_MARKS if item.get_closest_marker(mark) is not None}


def test_each_collected_test_has_the_tier_of_its_path(request):
    expected = {'end_to_end/': 'end_to_end', 'chaos/': 'fault', 'bench/': 'slow',
                'signal_bus/test_tail.py': 'end_to_end',
                'dashboard/test_pages.py': 'slow'}
    for item in request.session.items:
        path = item.path.resolve().relative_to(TESTS).as_posix()
        want = {mark for prefix, mark in expected.items() if path.startswith(prefix)}
        if want:
            assert tiers(item) == want, item.nodeid
    assert tiers(request.node) == set()         # this file is in the in-process tier


def test_the_known_failure_is_skipped_unless_asked_for(request):
    asked = request.config.getoption('--known-failures')
    for item in request.session.items:
        if item.get_closest_marker('known_failure') is not None:
            skipped = item.get_closest_marker('skip') is not None
            assert skipped != asked, item.nodeid
