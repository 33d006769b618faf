"""``queue-status`` on a real storage (SQLite and the throwaway Redis)."""
from __future__ import annotations

import io
import json

from queue_core import TaskQueue
from queue_core.status import main


def _status(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_json_shows_pending_scheduled_in_flight_locks_and_results(tmp_path):
    storage = 'sqlite:///' + str(tmp_path / 'q.db')
    queue = TaskQueue('main', storage=storage)

    @queue.task()
    def add(a, b):
        return a + b

    add(1, 2)
    add(7, 8)
    queue.add_schedule(add.s(5, 6, delay=60))
    with queue.lock_task('nightly'):
        code, out, _ = _status('--storage', storage, '--queue', 'main', '--json')
    status = json.loads(out)
    assert code == 0
    assert (status['pending'], status['scheduled'], status['locks'], status['broker']) == \
        (2, 1, ['nightly'], None)
    assert status['in_flight'] == [] and status['results'] == 0
    code, out, _ = _status('--storage', storage, '--queue', 'main')
    assert code == 0 and 'pending    2' in out and 'scheduled  1' in out


def test_the_broker_stats_are_shown_with_control(tmp_path, start_broker):
    broker = start_broker()
    storage = 'sqlite:///' + str(tmp_path / 'q.db')
    code, out, _ = _status('--storage', storage, '--queue', 'main', '--json',
                           '--control', broker.endpoints.control)
    assert code == 0 and json.loads(out)['broker']['last_seq'] == 0


def test_a_storage_that_cannot_be_reached_exits_2_with_one_line():
    code, out, err = _status('--storage', 'redis://127.0.0.1:1/0', '--queue', 'main')
    assert code == 2 and out == '' and err.count('\n') == 1


def test_bad_arguments_exit_2():
    assert _status()[0] == 2
    assert _status('app.queue', '--storage', 'memory://', '--queue', 'q')[0] == 2
