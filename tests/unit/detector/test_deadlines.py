import random

from services.detector.domain.deadlines import DeadlineHeap


def test_due_keys_come_out_once_in_deadline_order():
    heap = DeadlineHeap()
    heap.push(b"b", 20.0)
    heap.push(b"a", 10.0)
    heap.push(b"c", 30.0)
    assert heap.pop_due(25.0) == [b"a", b"b"]
    assert heap.pop_due(25.0) == []
    assert len(heap) == 1
    assert heap.next_due() == 30.0


def test_an_earlier_deadline_replaces_a_later_one():
    heap = DeadlineHeap()
    heap.push(b"a", 50.0)
    heap.push(b"a", 10.0)
    assert heap.pop_due(10.0) == [b"a"]
    assert heap.pop_due(100.0) == []


def test_a_later_push_waits_for_the_earlier_entry_which_the_caller_rechecks():
    heap = DeadlineHeap()
    heap.push(b"a", 10.0)
    heap.push(b"a", 50.0)
    assert heap.pop_due(10.0) == [b"a"]
    heap.push(b"a", 50.0)
    assert heap.pop_due(49.0) == []
    assert heap.pop_due(50.0) == [b"a"]


def test_discarded_keys_never_come_due():
    heap = DeadlineHeap()
    heap.push(b"a", 1.0)
    heap.discard(b"a")
    assert heap.pop_due(100.0) == []
    assert heap.next_due() is None


def test_pop_due_returns_exactly_the_expired_keys_among_many():
    rng = random.Random(7)
    heap = DeadlineHeap()
    deadlines = {f"k{i}".encode(): rng.uniform(0, 1000) for i in range(5000)}
    for key, when in deadlines.items():
        heap.push(key, when)
    due = heap.pop_due(400.0)
    assert set(due) == {k for k, w in deadlines.items() if w <= 400.0}
    assert len(heap) == 5000 - len(due)
