"""The cores are split by measured cost: the side that bounds the run gets more of them, and
the split follows the producers' measured cost once clips have given it (issue 29, point 1).
Costs are stubs (core-seconds per image): nothing here is timed."""

from __future__ import annotations

from afgen.extraction.engines.balance import Balancer, split

SLOW_BACKBONE = 0.1  # ResNet50-like: ~10x the producers' cost per image
FAST_BACKBONE = 0.002  # a small network on a bf16 CPU: a fraction of it
PRODUCERS = 0.0095


def test_producers_as_the_bottleneck_get_more_processes_and_the_backbone_more_threads_otherwise():
    fast = split(16, FAST_BACKBONE, PRODUCERS)
    slow = split(16, SLOW_BACKBONE, PRODUCERS)
    assert fast.producers > slow.producers and fast.threads < slow.threads
    assert (fast.producers, fast.threads) == (14, 3)  # the producers need 83% of 16 cores: 13.2, the backbone 2.8
    assert (slow.producers, slow.threads) == (2, 15)  # they need 9%
    assert "producers bound the run" in fast.reason and "backbone bound the run" in slow.reason
    # on 2 cores the same: the slower side has both cores to itself when the other waits
    assert (split(2, FAST_BACKBONE, PRODUCERS).producers, split(2, FAST_BACKBONE, PRODUCERS).threads) == (2, 1)
    assert (split(2, SLOW_BACKBONE, PRODUCERS).producers, split(2, SLOW_BACKBONE, PRODUCERS).threads) == (1, 2)


def test_the_producers_share_is_rounded_up_the_backbones_to_the_nearest_and_the_limit_is_said():
    s = split(4, 0.03, 0.01)  # producers need 25% of 4 cores: exactly one; the backbone exactly three
    assert (s.producers, s.threads) == (1, 3)
    # producers 0.88 of 2 cores: one process; the backbone's 1.12 cores are one thread, not two
    assert (split(2, 0.0053, 0.0042).producers, split(2, 0.0053, 0.0042).threads) == (1, 1)
    assert (split(2, 0.0253, 0.0057).producers, split(2, 0.0253, 0.0057).threads) == (1, 2)  # 1.63 cores: two
    assert "limit 100.0 img/s" in s.reason and "producers need 25%" in s.reason
    assert split(4, 0.03, 0.01, most=1).producers == 1
    assert split(16, FAST_BACKBONE, PRODUCERS, most=3).producers == 3  # no more processes than clips


def test_workers_and_threads_given_are_kept():
    assert (split(8, FAST_BACKBONE, PRODUCERS, workers=1).producers, split(8, FAST_BACKBONE, PRODUCERS,
                                                                           workers=1).threads) == (1, 8)
    given = split(8, FAST_BACKBONE, PRODUCERS, workers=3, threads=2)
    assert (given.producers, given.threads) == (3, 2) and "(--workers)" in given.reason and "(--threads)" in given.reason
    only_threads = split(8, FAST_BACKBONE, PRODUCERS, threads=1)
    assert only_threads.threads == 1 and only_threads.producers == split(8, FAST_BACKBONE, PRODUCERS).producers
    assert split(8, None, PRODUCERS).producers == 7 and "not measured" in split(8, None, PRODUCERS).reason
    assert split(8, FAST_BACKBONE, PRODUCERS, workers=0).threads == 8  # in-process producers


def test_the_split_follows_the_measured_producer_cost_after_the_first_clips():
    """The prior says the producers are cheap; the first clips measure them 10x dearer: the
    balancer moves cores to them once, then keeps the split while the cost stays."""
    b = Balancer(8, 0.01, "stub", prior=0.001, after=3)
    assert (b.split.producers, b.split.threads) == (1, 7) and "assumed" in b.split.reason  # 7.3 cores: 7
    assert b.observe(0.35, 35) is None and b.observe(0.35, 35) is None  # 2 clips: not yet
    new = b.observe(0.35, 35)  # 0.01 core-s per image, as dear as the backbone
    assert new is not None and (new.producers, new.threads) == (4, 4)
    assert "measured on 3 clips" in new.reason and "re-balanced after 3 clips from 1 + 7" in new.reason
    assert all(b.observe(0.35, 35) is None for _ in range(10))  # same cost: no change at 6 or 12 clips
    assert b.rebalanced == 1 and "measured on 12 clips" in b.split.reason and "re-balanced after 3 clips" in b.split.reason


def test_nothing_is_rebalanced_when_both_sides_are_given_or_nothing_was_measured():
    fixed = Balancer(8, 0.01, workers=2, threads=3, prior=0.001, after=1)
    assert all(fixed.observe(1.0, 10) is None for _ in range(4))
    assert (fixed.split.producers, fixed.split.threads) == (2, 3)
    unmeasured = Balancer(8, 0.01, prior=0.001, after=1)
    assert unmeasured.observe(None, 35) is None and unmeasured.observe(0.3, 0) is None and unmeasured.clips == 0


def test_a_later_run_starts_from_the_cost_an_earlier_one_measured(tmp_path, monkeypatch):
    """The first run's producers measured dearer than the prior: the next run on this machine
    with the same settings starts at the split they imply, not at the prior's."""
    from afgen.config import CACHE_DIR_ENV
    from afgen.extraction.engines.balance import cost_key

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    key = cost_key({"flow": "farneback"})
    first = Balancer(8, 0.01, "stub", after=3, key=key)
    assert "assumed" in first.split.reason and first.split.producers == 4  # the prior: 0.0095
    for _ in range(3):
        first.observe(0.035, 1)  # 0.035 core-s per image: 3.5x the backbone's
    later = Balancer(8, 0.01, "stub", key=key)
    assert (later.split.producers, later.split.threads) == (first.split.producers, first.split.threads) == (7, 2)
    assert "measured on 3 clips of an earlier run here" in later.split.reason
    other = Balancer(8, 0.01, "stub", key=cost_key({"flow": "dis"}))
    assert "assumed" in other.split.reason  # other settings: their own cost
