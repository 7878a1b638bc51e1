"""The replay on several processes gives exactly what one process gives: the same report, the same messages in
the same order."""

from __future__ import annotations

import io
import json
import random
import re
import sys
import time
from pathlib import Path

import pytest

from services.common.settings import Settings
from services.detector.domain.event import BadEvent
from services.detector.replay import END, ReplayReport, Share, replay
from services.detector.replay_parallel import ReplayFailed, replay_file
from services.detector.wiring import build_detector

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from detector_data import generic_lines

NOW = time.time()
DETECTOR = build_detector(Settings())


def render(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False, sort_keys=True)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 3,000 events of some 500 deals, interleaved in time, with redeliveries and bad lines among them."""
    rng = random.Random(7)
    lines: list[str] = []
    for line in generic_lines(3_000, now=NOW):
        lines.append(line)
        roll = rng.random()
        if roll < 0.01:
            lines.append('{"not json')
        elif roll < 0.02:
            lines.append(json.dumps({"event_id": f"x{len(lines)}", "deal": {}}))
        elif roll < 0.03:
            lines.append(json.dumps({"event_id": "y", "occurred_at": "soon", "deal": {"id": "7"}}))
        elif roll < 0.08:
            lines.append(rng.choice(lines[-300:]))
        elif roll < 0.09:
            lines.append("")
    path = tmp_path_factory.mktemp("replay") / "history.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replayed(path: Path, jobs: int) -> tuple[ReplayReport, str]:
    out = io.StringIO()
    report = replay_file(path, DETECTOR, jobs=jobs, until=NOW, out=out, render=render)
    return report, out.getvalue()


def test_the_export_exercises_what_the_merge_must_order(export):
    report, text = replayed(export, 1)
    messages = [json.loads(m) for m in text.splitlines()]
    assert report.rejected and report.duplicates and report.deals > 100
    assert {m["kind"] for m in messages} >= {
        "went_quiet",
        "reassigned",
        "stalled",
        "closed_lost",
        "contact_left",
    }
    assert report.resumed and report.revised


@pytest.mark.parametrize("jobs", [2, 3, 5])
def test_a_replay_in_shares_equals_the_replay_in_one_process(export, jobs):
    alone, alone_text = replayed(export, 1)
    shared, shared_text = replayed(export, jobs)
    assert shared_text == alone_text
    assert shared.summary() == alone.summary()
    assert list(shared.summary()["by_kind_and_cause"]) == list(alone.summary()["by_kind_and_cause"])
    assert shared.first_rejections == alone.first_rejections
    assert len(alone_text.splitlines()) > 500


def test_the_shares_split_the_deals_without_overlap():
    keys = [f"hubspot:{n}" for n in range(2_000)]
    for count in (2, 3, 7):
        owners = [[i for i in range(count) if Share(i, count).owns(k)] for k in keys]
        assert all(len(o) == 1 for o in owners)
        assert len({o[0] for o in owners}) == count


def test_each_share_replays_only_its_own_deals(export):
    whole = replay(export.read_bytes().splitlines(), DETECTOR, until=NOW)
    parts = [
        replay_file_share(export, Share(i, 3))
        for i in range(3)  # each alone, merged by hand
    ]
    assert sum(p.deals for p in parts) == whole.deals
    assert sum(p.events for p in parts) == whole.events
    assert sum(sum(p.rejected.values()) for p in parts) == sum(whole.rejected.values())


def replay_file_share(path: Path, share: Share) -> ReplayReport:
    from services.detector.replay import replay_share

    with path.open("rb") as lines:
        return replay_share(lines, DETECTOR, until=NOW, share=share)


def test_deadlines_fired_at_the_end_keep_the_order_of_one_process(export):
    ends: list[tuple[int, int]] = []
    from services.detector.replay import replay_share

    with export.open("rb") as lines:
        replay_share(lines, DETECTOR, until=NOW, emit=lambda line, then, _m: ends.append((line, then)))
    assert ends == sorted(ends)
    assert any(line == END for line, _ in ends)


def test_progress_is_reported_while_the_shares_run(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(generic_lines(25_000, now=NOW)) + "\n", encoding="utf-8")
    seen: list[int] = []
    report = replay_file(path, DETECTOR, jobs=2, until=NOW, progress=seen.append)
    assert report.events == 25_000
    assert seen and seen == sorted(seen) and seen[-1] <= 25_000


class Breaking:
    """A detector that fails on one deal, as a bug in a rule would."""

    def __init__(self, inner):
        self.inner = inner

    def apply(self, state, ev, **kw):
        if ev["deal_id"].endswith("7"):
            raise RuntimeError("a rule broke")
        return self.inner.apply(state, ev, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_share_that_fails_fails_the_replay_with_its_traceback(export):
    with pytest.raises(ReplayFailed, match="a rule broke"):
        replay_file(export, Breaking(DETECTOR), jobs=2, until=NOW)  # type: ignore[arg-type]


def test_a_bad_event_is_still_only_a_rejection_in_a_share(export):
    class Rejecting(Breaking):
        def apply(self, state, ev, **kw):
            if ev["deal_id"].endswith("7"):
                raise BadEvent("deal 7 is refused")
            return self.inner.apply(state, ev, **kw)

    alone = replay_file(export, Rejecting(DETECTOR), jobs=1, until=NOW)  # type: ignore[arg-type]
    shared = replay_file(export, Rejecting(DETECTOR), jobs=3, until=NOW)  # type: ignore[arg-type]
    assert alone.rejected["deal 7 is refused"] > 0
    assert shared.summary() == alone.summary() and shared.first_rejections == alone.first_rejections


def test_what_opened_for_each_deal_is_the_same_in_shares(export):
    alone = replay_file(export, DETECTOR, jobs=1, until=NOW, by_deal=True)
    shared = replay_file(export, DETECTOR, jobs=3, until=NOW, by_deal=True)
    assert alone.fired and shared.fired == alone.fired
    assert sum(sum(c.values()) for c in alone.fired.values()) == sum(alone.opened.values())


@pytest.mark.parametrize("block", [1, 5, 64, 1 << 20])
@pytest.mark.parametrize("packed", [False, True])
def test_an_export_read_in_pieces_gives_its_lines_whole(block, packed, monkeypatch):
    import gzip

    from services.detector import replay_parallel

    rng = random.Random(block)
    lines = [
        rng.choice(
            (b"", b"\r", b"   ", b'{"a": 1}', "ｘ".encode() * rng.randrange(1, 40), b"z" * rng.randrange(200))
        )
        + b"\n"
        for _ in range(300)
    ]
    data = b"".join(lines) + b"no newline at the end"
    monkeypatch.setattr(replay_parallel, "BLOCK", block)
    # each piece copied as it comes: the next is read into the same buffer
    pieces = [
        bytes(piece)
        for piece in replay_parallel.ExportLines(io.BytesIO(gzip.compress(data) if packed else data)).blocks()
    ]
    assert b"".join(pieces) == data
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])  # every piece but the last ends a line
    assert all(piece for piece in pieces)
    whole = list(replay_parallel.ExportLines(io.BytesIO(data)))
    assert [line for piece in pieces for line in re.findall(rb"[^\n]*\n|[^\n]+$", piece)] == whole


def test_an_export_that_cannot_be_read_in_pieces_fails_with_the_reason():
    import gzip

    from services.detector.replay_parallel import ExportLines, ExportUnreadable

    cut = gzip.compress(b'{"a": 1}\n' * 50_000)[:-40]
    with pytest.raises(ExportUnreadable, match="cannot read the export"):
        list(ExportLines(io.BytesIO(cut)).blocks())
