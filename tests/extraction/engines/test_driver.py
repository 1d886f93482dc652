"""The driver: one loop for extract and predict that counts progress, records a failed clip
and goes on, and lets a stop signal finish the clip in hand, then stop."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from afgen import lifecycle
from afgen.extraction.dataset import Clip
from afgen.extraction.engines import driver
from afgen.extraction.engines.driver import drive

CLIPS = [Clip(i, Path(f"{i}.mp4"), "x", None, f"{i}.mp4") for i in ("a", "b", "c")]
EVENTS = [("done", "b", "features of b"), ("failed", "a", {}, "a: not a video"), ("done", "c", "features of c")]


class RecordingBar:
    def __init__(self) -> None:
        self.advanced, self.statuses = 0, []

    def advance(self) -> None:
        self.advanced += 1

    def status(self, text: str) -> None:
        self.statuses.append(text)


@pytest.fixture()
def bar(monkeypatch) -> RecordingBar:
    """The progress bar the driver opens, recorded (with its total and label)."""
    recording = RecordingBar()

    @contextmanager
    def progress_bar(total, label, enabled=True):
        recording.opened = (total, label)
        yield recording
    monkeypatch.setattr(driver, "progress_bar", progress_bar)
    return recording


def test_every_event_is_committed_and_counted_and_a_failure_does_not_stop_the_loop(bar):
    committed = []
    tally = drive(iter(EVENTS), CLIPS, lambda clip, event: committed.append((clip.id, event[0])), label="extract")
    assert committed == [("b", "done"), ("a", "failed"), ("c", "done")]  # in the engine's order, by id
    assert (tally.done, tally.failed) == (2, 1)
    assert bar.opened == (3, "extract") and bar.advanced == 3
    assert bar.statuses[-1] == "[red]1 failed"


def test_prepare_runs_outside_the_critical_section_and_commit_inside(bar, monkeypatch):
    seen = []

    def prepare(clip, event):
        seen.append(("prepare", clip.id, lifecycle._critical_depth))
        return f"row of {clip.id}"

    def commit(clip, row):
        seen.append(("commit", row, lifecycle._critical_depth))

    tally = drive(iter(EVENTS[:2]), CLIPS, commit, label="predict", prepare=prepare, failed_word="unreadable")
    assert seen == [("prepare", "b", 0), ("commit", "row of b", 1), ("prepare", "a", 0), ("commit", "row of a", 1)]
    assert (tally.done, tally.failed) == (1, 1) and bar.statuses == ["[red]1 unreadable"]


def test_a_stop_signal_finishes_the_clip_in_hand_then_stops_saying_how_far_it_got(bar, monkeypatch):
    monkeypatch.setattr(lifecycle, "received", None)
    committed, pulled = [], []

    def events():
        for event in EVENTS:
            pulled.append(event[1])
            yield event

    def commit(clip, event):
        if clip.id == "a":
            lifecycle._handler(signal.SIGTERM, None)  # arrives while the clip's files are written
        committed.append(clip.id)

    with pytest.raises(lifecycle.Stopped) as stop:
        drive(events(), CLIPS, commit, label="extract", before=4, of=7)
    assert committed == ["b", "a"] and pulled == ["b", "a"]  # "a" finished; "c" never asked for
    assert stop.value.progress == "6 of 7 clips"  # 4 from an earlier run, then b and a
    assert bar.advanced == 1  # the stop came before "a" was advanced past
