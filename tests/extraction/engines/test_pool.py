"""The local engine's producer pool, seen from the backbone's side: which messages come through
and where the waiting time is booked (the `afgen extract` summary's bottleneck line reads it),
and how it grows or retires processes mid-run (the balancer's re-balance, issue 29) with every
clip still coming out exactly once."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from afgen.config import AudioFeatureConfig, FlowConfig, VideoConfig
from afgen.extraction.dataset import Clip, discover
from afgen.extraction.engines import Stats
from afgen.extraction.engines.pool import ProducerPool
from afgen.extraction.producer import Settings

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
    pool.jobs, pool.results, pool.procs = queue.Queue(), _SlowResults(messages), {0: _Alive()}
    pool.retiring, pool.exited, pool.ended = 0, set(), False
    pool.started, pool.room, pool.owed, pool.handed = set(), threading.Semaphore(0), 0, []
    return pool


def test_the_pool_is_settled_once_every_process_has_taken_a_clip():
    """A trial of splits (balance.py) times nothing while a process is still warming up."""
    clips = [Clip("a", Path("a.mp4"), "x", None, "a.mp4")]
    pool = _pool([("start", "a", 0), ("images", "a", "chunk", 0), ("done", "a", {"t": 1}, {}), ("exit", None, 0)])
    messages = pool.messages(clips, Stats())
    assert not pool.settled
    assert next(messages)[0] == "images" and pool.settled
    list(messages)


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


SETTINGS = Settings(video=VideoConfig(height=32, width=32), flow=FlowConfig(algorithm="dis"),
                    audio=AudioFeatureConfig(), chunk=4)


def _done(pool, clips, after=None):
    """Clip ids of the "done" messages; `after(n)` is called after the n-th one."""
    out = []
    for message in pool.messages(clips, Stats()):
        if message[0] == "done":
            out.append(message[1])
            if after:
                after(len(out))
    return out


@pytest.mark.slow
def test_a_pool_grown_and_then_shrunk_mid_run_gives_every_clip_once(tmp_path, clip_factory):
    for i in range(12):
        clip_factory(f"data/c/{i}.mp4", seconds=1.0)
    clips = discover(tmp_path / "data").clips
    pool = ProducerPool(SETTINGS, 1, 2)
    sizes = []
    try:
        def resize(n):
            if n == 1:
                pool.resize(3)
            if n == 2:  # clips are still to hand out (a few at a time): two processes retire
                pool.resize(1)
            sizes.append(pool.workers)
        done = _done(pool, clips, resize)
    finally:
        pool.close()
    assert sorted(done) == sorted(c.id for c in clips)
    assert len(pool.procs) == 3 and sizes[:2] == [3, 1]  # two started, then two retired
    assert pool.exited == {0, 1, 2}  # every process, retired or last, ended on its stop signal


def test_shrinking_before_the_run_stops_the_extra_processes_at_once(tmp_path, clip_factory):
    clip_factory("data/c/a.mp4", seconds=1.0)
    clips = discover(tmp_path / "data").clips
    pool = ProducerPool(SETTINGS, 3, 2)
    try:
        pool.resize(1)
        assert pool.workers == 1
        deadline = time.monotonic() + 60  # each takes a stop signal once warmed up (none killed on the queue's lock)
        while sum(p.is_alive() for p in pool.procs.values()) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(p.is_alive() for p in pool.procs.values()) == 1
        assert _done(pool, clips) == [clips[0].id]
    finally:
        pool.close()


def _state(pid: int) -> str:
    """The process's state letter from /proc (T: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _all_in_state(pool, stopped: bool) -> bool:
    """Whether every process is (or, within 5 s, comes to be) stopped, or not: signals arrive async."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all((_state(p.pid) == "T") == stopped for p in pool.procs.values()):
            return True
        time.sleep(0.02)
    return False


def _queued_after(pool, seconds: float) -> int:
    """Messages waiting for this process after `seconds` (the producers work meanwhile)."""
    time.sleep(seconds)
    return pool.results.qsize()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_clips_handed_out_ahead_are_produced_beyond_the_bound_paused_on_demand_and_come_out_once(tmp_path,
                                                                                                  clip_factory):
    """Issue 29, no dead start: clips handed out before the run (while `auto` measures) are worked on
    past the queue's bound (2 messages here), the producers stop while the measurement times and
    go on after; each clip comes out once, and one handed out but not asked for is dropped (with
    the two processes the resize leaves, retired by stop signal: one may hold an early clip)."""
    for i in range(6):
        clip_factory(f"data/c/{i}.mp4", seconds=1.0)
    clips = discover(tmp_path / "data").clips
    pool = ProducerPool(SETTINGS, 2, 1)  # bound: depth 1 x max(2, workers) = 2 messages
    try:
        pool.ahead(clips[:4])  # room for 3-s clips; these 1-s ones send 6 messages each (chunk 4)
        deadline = time.monotonic() + 60
        while pool.results.qsize() < 2 and time.monotonic() < deadline:  # at work
            time.sleep(0.05)
        with pool.paused():
            assert _all_in_state(pool, stopped=True)
            time.sleep(0.2)  # a message on its way through the pipe lands
            stopped_at = pool.results.qsize()
            assert _queued_after(pool, 1.0) == stopped_at  # stopped: nothing more meanwhile
        assert _all_in_state(pool, stopped=False)
        deadline = time.monotonic() + 60
        while pool.results.qsize() < 4 * 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pool.results.qsize() >= 4 * 6 > 2  # all four produced, past the bound
        pool.resize(1)  # retired by stop signal, none terminated mid-clip
        done = _done(pool, clips[1:])  # clip 0 was handed out early but is not asked for
    finally:
        pool.close()
    assert sorted(done) == sorted(c.id for c in clips[1:])
    assert pool.room.get_value() - pool.owed == 2  # what is not yet taken back of the extra room, over the bound
