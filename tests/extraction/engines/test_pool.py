"""The local engine's producer pool, seen from the backbone's side: which messages come through
and where the waiting time is booked (the `afgen extract` summary's bottleneck line reads it)."""

from __future__ import annotations

import queue
import time
from pathlib import Path

from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Stats
from afgen.extraction.engines.pool import ProducerPool

DELAY = 0.05


class _SlowResults:
    """A producer results queue whose every message takes DELAY seconds to arrive."""

    def __init__(self, messages: list[tuple]) -> None:
        self.messages = list(messages)

    def get(self, timeout: float) -> tuple:
        time.sleep(DELAY)
        return self.messages.pop(0)


class _Alive:
    exitcode = None

    def is_alive(self) -> bool:
        return True


def _pool(messages: list[tuple]) -> ProducerPool:
    """A pool whose one producer process is simulated: no process is started."""
    pool = object.__new__(ProducerPool)
    pool.workers, pool.jobs, pool.results, pool.procs = 1, queue.Queue(), _SlowResults(messages), {0: _Alive()}
    return pool


def test_waiting_before_the_first_message_is_start_up_and_after_it_is_waiting():
    clips = [Clip("a", Path("a.mp4"), "x", None, "a.mp4"), Clip("b", Path("b.mp4"), "x", None, "b.mp4")]
    messages = [("start", "a", 0), ("images", "a", "chunk", 0), ("done", "a", {"t": 1}, {}),
                ("start", "b", 0), ("failed", "b", {}, "b.mp4: broken"), ("exit", None, 0)]
    stats = Stats()
    out = list(_pool(messages).messages(clips, stats))
    # start and exit are the pool's own bookkeeping; the rest reach the backbone in order
    assert [m[0] for m in out] == ["images", "done", "failed"]
    # (sleep never returns early; the upper bounds leave a loaded machine room to overshoot)
    assert DELAY <= stats.startup_wait_seconds < 3 * DELAY  # the first message only
    assert 5 * DELAY <= stats.wait_seconds < 5 * DELAY + 0.2  # the five after it
    assert stats.backbone_seconds == 0.0


def test_stats_book_waiting_as_start_up_until_the_producers_have_started():
    stats = Stats()
    stats.waited(2.0)
    stats.producers_started = True
    stats.waited(0.5)
    stats.waited(0.25)
    assert (stats.startup_wait_seconds, stats.wait_seconds) == (2.0, 0.75)
