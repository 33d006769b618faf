"""The sequencer's duties as properties over random arrival orders (time passed in)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from signal_bus.ordering import ForgottenTasks, Pending, PublisherTable, Sequencer
from signal_bus.wire import BodyInfo, Header


def event(task, tseq, pub, pseq, final=False):
    return Pending(Header('enqueued', 'n', task, tseq, pub, pseq),
                   b'\x80', final, 0.0)


@st.composite
def histories(draw):
    """Tasks whose events (tseq 1..n) are spread over publishers, arriving interleaved."""
    per_pub: dict[int, list] = {}
    for task in range(draw(st.integers(1, 5))):
        for tseq in range(1, draw(st.integers(1, 5)) + 1):
            pub = draw(st.integers(1, 3))
            per_pub.setdefault(pub, []).append(('t%d' % task, tseq))
    # Each publisher's own events in its send order (a task's events on one publisher
    # are in tseq order); the merge across publishers is arbitrary.
    queues = {pub: list(events) for pub, events in per_pub.items()}
    arrivals = []
    while queues:
        pub = draw(st.sampled_from(sorted(queues)))
        arrivals.append((pub, queues[pub].pop(0)))
        if not queues[pub]:
            del queues[pub]
    return arrivals


@settings(max_examples=300)
@given(histories())
def test_every_event_is_released_in_task_order_with_no_gaps(arrivals):
    sequencer = Sequencer(hold=1.0)
    released = []
    pseqs: dict[int, int] = {}
    for pub, (task, tseq) in arrivals:
        pseqs[pub] = pseqs.get(pub, 0) + 1
        released += sequencer.push(event(task, tseq, pub, pseqs[pub]), now=0.0)
    # Every history is complete, so nothing waits for the window and nothing is a gap.
    assert sequencer.held == 0
    assert len(released) == len(arrivals)
    assert not any(item.gap for item in released)
    by_task: dict[str, list] = {}
    by_pub: dict[int, list] = {}
    for item in released:
        by_task.setdefault(item.event.header.task_id, []).append(item.event.header.tseq)
        by_pub.setdefault(item.event.header.pub, []).append(item.event.header.pseq)
    assert all(seqs == sorted(seqs) for seqs in by_task.values())
    assert all(seqs == sorted(seqs) for seqs in by_pub.values())


@settings(max_examples=200)
@given(histories(), st.data())
def test_missing_events_cost_at_most_the_window(arrivals, data):
    dropped = data.draw(st.sets(st.integers(0, len(arrivals) - 1)))
    sequencer = Sequencer(hold=1.0)
    released = []
    pseqs: dict[int, int] = {}
    for index, (pub, (task, tseq)) in enumerate(arrivals):
        pseqs[pub] = pseqs.get(pub, 0) + 1
        if index not in dropped:
            released += sequencer.push(event(task, tseq, pub, pseqs[pub]), now=0.5)
    released += sequencer.expire(now=1.5)
    assert len(released) == len(arrivals) - len(dropped) and sequencer.held == 0
    by_pub: dict[int, list] = {}
    for item in released:
        by_pub.setdefault(item.event.header.pub, []).append(item.event.header.pseq)
    assert all(seqs == sorted(seqs) for seqs in by_pub.values())


def test_unknown_task_starting_after_one_waits_for_its_window():
    sequencer = Sequencer(hold=0.1)
    assert sequencer.push(event('a', 3, 1, 1), now=0.0) == []
    assert sequencer.next_deadline() == 0.1
    assert sequencer.expire(now=0.05) == []
    (item,) = sequencer.expire(now=0.1)
    assert item.gap and item.event.header.tseq == 3


def test_final_event_forgets_the_task_and_state_is_capped():
    sequencer = Sequencer(hold=0.1, max_tasks=3)
    sequencer.push(event('done', 1, 1, 1, final=True), now=0.0)
    assert sequencer.tasks_tracked() == 0
    for index in range(5):
        sequencer.push(event('t%d' % index, 1, 1, index + 2), now=0.0)
    assert sequencer.tasks_tracked() == 3


def test_publisher_table_reports_holes_once():
    table = PublisherTable(max_publishers=2)
    info = BodyInfo(False, 'h', 1)
    assert table.observe(Header('enqueued', 'n', 'i', 1, 9, 4), info) is None
    loss = table.observe(Header('enqueued', 'n', 'i', 1, 9, 8), info)
    assert (loss.events, loss.first_pseq, loss.last_pseq, loss.host) == (3, 5, 7, 'h')
    assert table.observe(Header('enqueued', 'n', 'i', 1, 9, 6), info) is None
    assert table.observe(Header('enqueued', 'n', 'i', 1, 9, 9), info) is None
    for pub in (1, 2, 3):
        table.observe(Header('enqueued', 'n', 'i', 1, pub, 1), info)
    assert len(table) == 2


def test_a_task_forgotten_for_space_continues_without_a_hold_back():
    sequencer = Sequencer(hold=0.1, max_tasks=2)
    for index, task in enumerate(('old', 'b', 'c')):      # 'old' is pushed out of state
        sequencer.push(event(task, 1, 1, index + 1), now=0.0)
    assert sequencer.tasks_tracked() == 2
    (item,) = sequencer.push(event('old', 2, 2, 1), now=0.0)
    assert item.event.header.task_id == 'old' and not item.gap
    assert sequencer.push(event('never-seen', 2, 3, 1), now=0.0) == []


def test_a_task_heard_from_after_its_final_event_continues_without_a_hold_back():
    sequencer = Sequencer(hold=0.1)
    sequencer.push(event('t', 1, 1, 1), now=0.0)
    sequencer.push(event('t', 2, 1, 2, final=True), now=0.0)
    (item,) = sequencer.push(event('t', 3, 2, 1), now=0.0)
    assert not item.gap


def test_forgotten_tasks_remember_two_generations():
    forgotten = ForgottenTasks(capacity=100)
    for index in range(250):
        forgotten.add('task-%d' % index, index)
    assert all(('task-%d' % index, index) in forgotten for index in range(200, 250))
    assert ('task-249', 248) not in forgotten
    misses = sum(('other-%d' % index, 1) in forgotten for index in range(2000))
    assert misses < 100          # about 1% false positives per generation


def test_after_a_reset_the_new_life_opens_before_its_later_events():
    # A recovered task: the supervisor's INTERRUPTED (tseq nil) resets it, the requeue's
    # ENQUEUED (stored tseq + 101) comes from the recovering process, and the new
    # attempt's EXECUTING (+102) from a worker, which may reach the broker first.
    sequencer = Sequencer(hold=0.1)
    assert [r.event.header.tseq for r in sequencer.push(event('T', 1, 1, 1), 0.0)] == [1]
    interrupted = Pending(Header('interrupted', 'n', 'T', None, 2, 1), b'\x80', False, 0.0)
    assert len(sequencer.push(interrupted, 0.0)) == 1
    executing = Pending(Header('executing', 'n', 'T', 104, 3, 1), b'\x80', False, 0.01)
    assert sequencer.push(executing, 0.01) == []
    enqueued = Pending(Header('enqueued', 'n', 'T', 103, 2, 2), b'\x80', False, 0.02)
    released = sequencer.push(enqueued, 0.02)
    assert [(r.event.header.tseq, r.gap) for r in released] == [(103, False), (104, False)]


def test_after_a_reset_a_later_event_alone_waits_only_its_window():
    sequencer = Sequencer(hold=0.1)
    sequencer.push(Pending(Header('interrupted', 'n', 'T', None, 2, 1), b'\x80', False, 0.0),
                   0.0)
    executing = Pending(Header('executing', 'n', 'T', 104, 3, 1), b'\x80', False, 0.0)
    assert sequencer.push(executing, 0.0) == []
    released = sequencer.expire(0.2)
    assert [(r.event.header.tseq, r.gap) for r in released] == [(104, True)]
