"""The storage contract, run against every implementation: SQLite and PostgreSQL (the ``db_url`` fixture)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from schemas import RecoveryTaskCreated
from services.common.db import make_engine
from services.common.repositories import (
    InterruptionFilter,
    InvalidCursor,
    SqlAlchemyStore,
    TaskFilter,
    decode_cursor,
    encode_cursor,
)
from services.common.stats_repository import SqlAlchemyStatsStore, StatCell
from services.recovery.domain.playbooks import TaskPolicy, build_task, load_playbooks
from tests.unit.recovery.factories import NOW, interruption, resumed

pytestmark = pytest.mark.integration
POLICY = TaskPolicy(load_playbooks())


@pytest.fixture
def store(db_url: str) -> Iterator[SqlAlchemyStore]:
    engine = make_engine(db_url)
    s = SqlAlchemyStore(engine)
    s.create_schema()
    yield s
    engine.dispose()


def record_with_task(store: SqlAlchemyStore, i: object) -> bool:
    """What the recovery worker does for one interruption."""
    task = build_task(i, NOW, POLICY)  # type: ignore[arg-type]
    with store.transaction() as tx:
        tx.record_interruption(i)  # type: ignore[arg-type]
        created = tx.create_task(task)
        if created:
            tx.append_outbox("tasks", task.deal_key, RecoveryTaskCreated(task=task).model_dump_json(), NOW)
    return created


def all_tasks(store: SqlAlchemyStore) -> list[object]:
    return list(store.list_tasks(TaskFilter(), limit=500).items)


class TestStoreContract:
    def test_the_same_interruption_recorded_twice_is_one_row(self, store: SqlAlchemyStore) -> None:
        i = interruption()
        with store.transaction() as tx:
            first = tx.record_interruption(i)
        with store.transaction() as tx:
            second = tx.record_interruption(i)
        assert (first, second) == ("created", "unchanged")
        page = store.list_interruptions(InterruptionFilter())
        assert [s.interruption.id for s in page.items] == [i.id] and page.next_cursor is None

    def test_a_higher_revision_replaces_the_verdict_but_not_the_status(self, store: SqlAlchemyStore) -> None:
        i = interruption(cause="unknown")
        with store.transaction() as tx:
            tx.record_interruption(i)
            tx.mark_resumed(resumed(i))
        with store.transaction() as tx:
            assert tx.record_interruption(interruption(cause="budget", revision=1)) == "revised"
            assert tx.record_interruption(interruption(cause="external", revision=1)) == "unchanged"
            assert tx.record_interruption(interruption(cause="external", revision=0)) == "unchanged"
        stored = store.get_interruption(i.id)
        assert stored is not None
        assert (stored.interruption.cause, stored.status) == ("budget", "resumed")
        assert [
            s.interruption.id for s in store.list_interruptions(InterruptionFilter(cause="budget")).items
        ] == [i.id]

    def test_resuming_closes_an_open_interruption_once(self, store: SqlAlchemyStore) -> None:
        i = interruption()
        with store.transaction() as tx:
            tx.record_interruption(i)
            assert tx.mark_resumed(resumed(i)) is True
            assert tx.mark_resumed(resumed(i)) is False
            assert tx.mark_resumed(resumed(interruption(iid="unknown-id"))) is False
        stored = store.get_interruption(i.id)
        assert stored is not None and stored.status == "resumed" and stored.resumed_at == NOW

    def test_one_task_per_interruption(self, store: SqlAlchemyStore) -> None:
        assert record_with_task(store, interruption()) is True
        assert record_with_task(store, interruption()) is False
        assert len(all_tasks(store)) == 1
        assert len(store.pending_outbox()) == 1

    def test_concurrent_inserts_of_the_same_interruption_give_one_task(self, store: SqlAlchemyStore) -> None:
        barrier = threading.Barrier(2)
        results: list[bool] = []
        errors: list[BaseException] = []

        def insert() -> None:
            try:
                barrier.wait(timeout=10)
                results.append(record_with_task(store, interruption()))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=insert) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert sorted(results) == [False, True]
        assert len(all_tasks(store)) == 1
        assert len(store.pending_outbox()) == 1

    def test_a_failed_transaction_leaves_nothing_behind(self, store: SqlAlchemyStore) -> None:
        i = interruption()
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.record_interruption(i)
            tx.create_task(build_task(i, NOW, POLICY))
            tx.append_outbox("tasks", i.deal_key, "{}", NOW)
            tx.save_offsets("g", {("t", 0): 5})
            raise RuntimeError("crash before commit")
        assert store.get_interruption(i.id) is None
        assert all_tasks(store) == [] and store.pending_outbox() == []
        assert store.load_offsets("g", ["t"]) == {}

    def test_a_task_update_needs_the_version_it_was_read_at(self, store: SqlAlchemyStore) -> None:
        i = interruption()
        record_with_task(store, i)
        task = all_tasks(store)[0]
        moved = task.model_copy(update={"status": "in_progress", "version": 2})  # type: ignore[attr-defined]
        with store.transaction() as tx:
            assert tx.update_task(moved, expected_version=1) is True
        with store.transaction() as tx:
            assert tx.update_task(moved.model_copy(update={"status": "done", "version": 2}), 1) is False
        stored = store.get_task(moved.id)
        assert stored is not None and (stored.status, stored.version) == ("in_progress", 2)
        assert [t.id for t in store.list_tasks(TaskFilter(status="in_progress")).items] == [moved.id]

    def test_a_task_is_read_only_by_its_assignee_when_scoped(self, store: SqlAlchemyStore) -> None:
        record_with_task(store, interruption(owner_id="u-1"))
        task_id = all_tasks(store)[0].id  # type: ignore[attr-defined]
        assert store.get_task(task_id, assignee="u-1") is not None
        assert store.get_task(task_id, assignee="u-2") is None
        assert store.get_interruption(interruption().id, owner="u-2") is None

    def test_pagination_covers_every_row_once_in_a_stable_order(self, store: SqlAlchemyStore) -> None:
        for n in range(23):
            at = NOW + timedelta(minutes=n % 5)  # many rows share a detection time
            record_with_task(store, interruption(deal_id=f"D-{n:03}", detected_at=at))
        seen: list[str] = []
        cursor = None
        while True:
            page = store.list_interruptions(InterruptionFilter(source="generic"), cursor=cursor, limit=4)
            seen += [s.interruption.id for s in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len(seen) == 23 and len(set(seen)) == 23
        order = [
            (s.interruption.detected_at, s.interruption.id)
            for s in store.list_interruptions(InterruptionFilter(), limit=100).items
        ]
        assert order == sorted(order)
        tasks: list[str] = []
        cursor = None
        while True:
            tpage = store.list_tasks(TaskFilter(), cursor=cursor, limit=5)
            tasks += [t.id for t in tpage.items]
            if tpage.next_cursor is None:
                break
            cursor = tpage.next_cursor
        assert len(tasks) == 23 and len(set(tasks)) == 23

    def test_filters_select_by_deal_kind_cause_and_time(self, store: SqlAlchemyStore) -> None:
        record_with_task(store, interruption("went_quiet", "budget", deal_id="D-1"))
        record_with_task(
            store, interruption("stalled", "competitor", deal_id="D-1", detected_at=NOW + timedelta(days=1))
        )
        record_with_task(store, interruption("went_quiet", "competitor", deal_id="D-2", source="hubspot"))

        def ids(**kw: object) -> set[str]:
            return {
                s.interruption.deal_id + "/" + s.interruption.kind
                for s in store.list_interruptions(InterruptionFilter(**kw)).items
            }  # type: ignore[arg-type]

        assert ids(source="generic", deal_id="D-1") == {"D-1/went_quiet", "D-1/stalled"}
        assert ids(kind="went_quiet") == {"D-1/went_quiet", "D-2/went_quiet"}
        assert ids(cause="competitor", source="hubspot") == {"D-2/went_quiet"}
        assert ids(since=NOW + timedelta(hours=1)) == {"D-1/stalled"}
        tasks = store.list_tasks(TaskFilter(source="hubspot", deal_id="D-2")).items
        assert [(t.source, t.deal_id) for t in tasks] == [("hubspot", "D-2")]

    def test_outbox_messages_wait_until_marked_published(self, store: SqlAlchemyStore) -> None:
        record_with_task(store, interruption(deal_id="D-1"))
        record_with_task(store, interruption(deal_id="D-2"))
        pending = store.pending_outbox()
        assert [m.key for m in pending] == ["generic:D-1", "generic:D-2"]
        assert store.outbox_backlog() == (2, NOW)
        store.mark_published([pending[0].seq], NOW)
        assert [m.key for m in store.pending_outbox()] == ["generic:D-2"]
        assert store.prune_outbox(NOW + timedelta(seconds=1)) == 1
        assert store.outbox_backlog()[0] == 1

    def test_consumed_offsets_are_kept_per_group_and_partition(self, store: SqlAlchemyStore) -> None:
        with store.transaction() as tx:
            tx.save_offsets("g1", {("t", 0): 5, ("t", 1): 7})
        with store.transaction() as tx:
            tx.save_offsets("g1", {("t", 0): 9})
            tx.save_offsets("g2", {("t", 0): 1})
        assert store.load_offsets("g1", ["t"]) == {("t", 0): 9, ("t", 1): 7}
        assert store.load_offsets("g2", ["t", "other"]) == {("t", 0): 1}

    def test_a_cursor_that_was_not_made_here_is_refused(self, store: SqlAlchemyStore) -> None:
        for bad in ["", "!!!", "bm90IGpzb24", encode_cursor(NOW, "x")[:-3] + "A", "W1sxXSwgMl0", "x" * 600]:
            with pytest.raises(InvalidCursor):
                store.list_interruptions(InterruptionFilter(), cursor=bad)
        assert decode_cursor(encode_cursor(NOW, "id-1")) == (NOW, "id-1")


@pytest.fixture
def stats(db_url: str) -> Iterator[SqlAlchemyStatsStore]:
    engine = make_engine(db_url)
    s = SqlAlchemyStatsStore(engine)
    s.create_schema()
    yield s
    engine.dispose()


class TestStatsStoreContract:
    def test_counter_deltas_add_up_and_may_be_negative(self, stats: SqlAlchemyStatsStore) -> None:
        open_cell = StatCell("task_open", "week", "2026-W45", kind="stalled", owner="u-1")
        done_cell = StatCell("task_done", "week", "2026-W45", kind="stalled", owner="u-1")
        with stats.transaction() as tx:
            tx.add_counts({open_cell: 2})
        with stats.transaction() as tx:
            tx.add_counts({open_cell: -1, done_cell: 1, StatCell("task_open", "day", "2026-11-02"): 0})
        rows = {(c.group["kind"], c.metric): c.count for c in stats.counts("week", ["kind"])}
        assert rows == {("stalled", "task_open"): 1, ("stalled", "task_done"): 1}
        assert stats.counts("day", ["kind"]) == []

    def test_counts_group_by_the_chosen_dimensions_and_the_period_bucket(
        self, stats: SqlAlchemyStatsStore
    ) -> None:
        with stats.transaction() as tx:
            tx.add_counts(
                {
                    StatCell(
                        "interruptions", "month", "2026-10", kind="went_quiet", cause="budget", owner="u-1"
                    ): 2,
                    StatCell(
                        "interruptions",
                        "month",
                        "2026-11",
                        kind="went_quiet",
                        cause="competitor",
                        owner="u-2",
                    ): 3,
                }
            )
        by_period = {(c.group["period"], c.metric): c.count for c in stats.counts("month", ["period"])}
        assert by_period == {("2026-10", "interruptions"): 2, ("2026-11", "interruptions"): 3}
        by_kind = [(c.group, c.count) for c in stats.counts("month", ["kind"])]
        assert by_kind == [({"kind": "went_quiet"}, 5)]
        assert [c.count for c in stats.counts("month", ["cause"], owner="u-2")] == [3]
        with pytest.raises(ValueError):
            stats.counts("month", ["planet"])

    def test_facts_and_offsets_are_written_with_the_counters(self, stats: SqlAlchemyStatsStore) -> None:
        with stats.transaction() as tx:
            tx.save_facts({"i-1": {"kind": "stalled", "task_version": 1}})
            tx.save_offsets("stats", {("t", 1): 4})
        with stats.transaction() as tx:
            assert tx.load_facts(["i-1", "i-2"]) == {"i-1": {"kind": "stalled", "task_version": 1}}
            tx.save_facts({"i-1": {"kind": "stalled", "task_version": 2}})
        with pytest.raises(RuntimeError), stats.transaction() as tx:
            tx.save_facts({"i-2": {}})
            tx.add_counts({StatCell("interruptions", "day", "2026-11-02"): 1})
            tx.save_offsets("stats", {("t", 1): 9})
            raise RuntimeError("crash before commit")
        with stats.transaction() as tx:
            assert tx.load_facts(["i-1", "i-2"]) == {"i-1": {"kind": "stalled", "task_version": 2}}
        assert stats.load_offsets("stats", ["t"]) == {("t", 1): 4}
        assert stats.counts("day", []) == []
