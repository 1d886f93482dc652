"""The producer pool hands clips out a few at a time, so it can grow or retire processes while
it runs (the balancer's re-balance, issue 29) and every clip still comes out exactly once."""

from __future__ import annotations

from afgen.config import AudioFeatureConfig, FlowConfig, VideoConfig
from afgen.extraction.dataset import discover
from afgen.extraction.engines import Stats
from afgen.extraction.engines.pool import ProducerPool
from afgen.extraction.producer import Settings

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
        assert pool.workers == 1 and sum(p.is_alive() for p in pool.procs.values()) == 1
        assert _done(pool, clips) == [clips[0].id]
    finally:
        pool.close()
