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
    # a stream per thread (OpenVINO): the backbone's 1.12 cores are two threads, its 0.35 one
    assert (split(2, 0.0053, 0.0042, streams=True).producers, split(2, 0.0053, 0.0042, streams=True).threads) == (1, 2)
    assert split(2, FAST_BACKBONE, PRODUCERS, streams=True).threads == 1 and split(4, 0.03, 0.01, streams=True).threads == 3
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


def test_the_split_follows_the_measured_producer_cost_after_the_first_clips(monkeypatch):
    """The prior says the producers are cheap; the first clips measure them 10x dearer: the
    balancer moves cores to them once, then keeps the split while the cost stays (the cost
    model alone: no trial of splits)."""
    import afgen.config

    monkeypatch.setattr(afgen.config, "SPLIT_TRIAL", False)
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


class FakeClock:
    """Wall seconds as a test says they pass."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _two_cores(clock, rates, workers=None, threads=None, key=None, clips=30, cores=2):
    """A 2-core run whose model split is 1 + 1 (producers 0.88 of the cores), its first check
    after 3 clips, then `clips` clips of 35 images, each taking 35 / rates[split] wall seconds."""
    b = Balancer(cores, 0.0053, "stub", workers, threads, prior=0.0042, after=3, most=48, split_key=key, clock=clock)
    for _ in range(3):
        b.observe(0.0042 * 35, 35)
    tried, images = [], 0
    for _ in range(clips):
        tried.append((b.split.producers, b.split.threads))
        images += 35
        clock.now += 35 / rates.get(tried[-1], 100.0)
        b.finished(images)
    return b, list(dict.fromkeys(tried))


RATES = {(1, 1): 95.0, (1, 2): 100.0, (2, 1): 90.0, (2, 2): 110.0}  # img/s: 2 + 2 the fastest


def test_a_trial_of_the_neighbouring_splits_keeps_the_fastest_and_says_so():
    """Issue 29: the cost model says 1 + 1 on 2 cores; measured, 2 + 2 runs the pipeline fastest."""
    b, tried = _two_cores(FakeClock(), RATES)
    assert tried == [(1, 1), (1, 2), (2, 2), (2, 1)]  # the extra producer process starts once
    assert (b.split.producers, b.split.threads) == (2, 2) and b.trial.done
    assert "2 producer processes, 2 backbone threads on 2 cores, chosen by trial" in b.split.reason
    assert "2+2 3.14 clips/s, 1+2 2.86, 1+1 2.71, 2+1 2.57" in b.split.reason  # 35 images per clip
    assert "the cost model said 1 producer process, 1 backbone thread" in b.split.reason


def test_a_trial_keeps_the_models_split_when_it_is_the_fastest():
    b, tried = _two_cores(FakeClock(), {**RATES, (1, 1): 120.0})
    assert len(tried) == 4 and (b.split.producers, b.split.threads) == (1, 1)
    assert "1+1 3.43 clips/s" in b.split.reason


def test_a_trial_skips_a_clip_after_each_switch_and_waits_for_new_processes_to_start(monkeypatch):
    """The settling clip's time never counts: a slow first clip after a switch changes nothing."""
    import afgen.config

    monkeypatch.setattr(afgen.config, "SPLIT_TRIAL_CLIPS", (1, 2))
    clock = FakeClock()
    b = Balancer(2, 0.0053, "stub", prior=0.0042, after=3, most=48, clock=clock)
    for _ in range(3):
        b.observe(0.0042 * 35, 35)
    assert b.finished(35, settled=False) is None and b.finished(70, settled=False) is None
    clock.now += 100.0  # the settling clip: slow
    assert b.finished(105) is None
    clock.now += 1.0
    assert b.finished(140) is None
    clock.now += 1.0
    assert b.finished(175) is not None and b.trial.rates == {(1, 1): 35.0}


def test_workers_given_only_the_threads_are_tried():
    b, tried = _two_cores(FakeClock(), {**RATES, (1, 2): 500.0}, workers=2)  # 1 + 2 would win: not tried
    assert tried == [(2, 1), (2, 2)] and (b.split.producers, b.split.threads) == (2, 2)
    assert "(--workers)" in b.split.reason and "chosen by trial" in b.split.reason
    four, tried = _two_cores(FakeClock(), {(3, 4): 500.0, (2, 4): 200.0}, workers=2, cores=4)
    assert tried == [(2, 3), (2, 4)] and (four.split.producers, four.split.threads) == (2, 4)  # 3 + 4 never run
    threads, tried = _two_cores(FakeClock(), RATES, threads=1)
    assert tried == [(1, 1), (2, 1)] and (threads.split.producers, threads.split.threads) == (1, 1)
    both, tried = _two_cores(FakeClock(), RATES, workers=1, threads=1)
    assert tried == [(1, 1)] and both.trial is None


def test_a_remembered_winner_starts_the_next_run_without_a_trial(tmp_path, monkeypatch):
    from afgen.config import CACHE_DIR_ENV
    from afgen.extraction.engines.balance import cost_key

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    key = cost_key({"backbone": "efficientnet_lite0"})
    first, _ = _two_cores(FakeClock(), RATES, key=key)
    later = Balancer(2, 0.0053, "stub", prior=0.0042, after=3, most=48, split_key=key, clock=FakeClock())
    assert (later.split.producers, later.split.threads) == (2, 2)  # from the start
    assert "chosen by trial in an earlier run here: 2+2 3.14 clips/s" in later.split.reason
    _, tried = _two_cores(FakeClock(), {**RATES, (1, 1): 500.0}, key=key)
    assert tried == [(2, 2)]  # no trial: 1 + 1, now the fastest, is never run
    other, tried = _two_cores(FakeClock(), RATES, key=cost_key({"backbone": "resnet18"}))
    assert tried[0] == (1, 1) and len(tried) == 4  # another backbone: its own trial


def test_no_trial_when_it_is_off_or_the_run_is_too_short(monkeypatch):
    import afgen.config

    b = Balancer(2, 0.0053, "stub", prior=0.0042, after=3, most=10, clock=FakeClock())
    for _ in range(3):
        b.observe(0.0042 * 35, 35)
    assert b.trial is None  # 7 clips left, 4 x (1 + 4) needed
    monkeypatch.setattr(afgen.config, "SPLIT_TRIAL", False)
    _, tried = _two_cores(FakeClock(), RATES)
    assert tried == [(1, 1)]


def test_a_trial_the_run_would_end_in_keeps_the_fastest_so_far_and_the_next_run_starts_there(tmp_path, monkeypatch):
    """24 clips: 3, then 4 splits x 5 would fit, but a process that starts slowly costs two: the
    last split is not tried, the fastest of the others is kept, and the next run starts at it."""
    from afgen.config import CACHE_DIR_ENV
    from afgen.extraction.engines.balance import SPLIT_FILE, _remembered, cost_key

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    clock, key = FakeClock(), cost_key({"run": "short"})
    b = Balancer(2, 0.0053, "stub", prior=0.0042, after=3, most=24, split_key=key, clock=clock)
    images = 0
    for _ in range(3):
        images += 35
        b.finished(images)
        b.observe(0.0042 * 35, 35)
    tried = []
    for i in range(21):
        tried.append((b.split.producers, b.split.threads))
        images += 35
        clock.now += 35 / RATES[tried[-1]]
        b.finished(images, settled=i not in (5, 6))  # the first two clips of 1 + 2 wait for nothing: say so
    assert list(dict.fromkeys(tried)) == [(1, 1), (1, 2), (2, 2)] and b.trial.done
    assert (b.split.producers, b.split.threads) == (2, 2) and "cut short by the end of the run" in b.split.reason
    assert _remembered(SPLIT_FILE, key)["producers"] == 2
    later = Balancer(2, 0.0053, "stub", prior=0.0042, after=3, most=24, split_key=key, clock=clock)
    assert (later.split.producers, later.split.threads) == (2, 2)
    assert "earlier run here: 2+2 3.14 clips/s, 1+2 2.86, 1+1 2.71 (1 split(s) untried: that run ended)" in later.split.reason


def test_clips_handed_out_during_the_measurement_take_every_core_and_no_trial_times_them():
    """Issue 29, no dead start: the producers worked on the first clips while `auto` measured, so
    the backbone takes every core until it is through them; the split is then the model's (the
    producers' cost measured meanwhile), and only then are splits checked and tried."""
    clock = FakeClock()
    b = Balancer(2, 0.0053, "stub", prior=0.0042, after=3, most=48, clock=clock, ahead=5)
    assert b.draining and b.threads == 2 and (b.split.producers, b.split.threads) == (1, 1)
    for _ in range(5):  # the producers finish the early clips (and more) before the backbone does
        assert b.observe(0.0042 * 35, 35) is None
    assert b.trial is None
    for images in (35, 70, 105, 140):  # the backbone through 4 of the 5
        assert b.finished(images) is None and b.draining and b.threads == 2
    through = b.finished(175)
    assert through is not None and (through.producers, through.threads) == (1, 1)  # the split's thread now
    assert not b.draining and b.threads == 1 and b.trial is None
    assert b.observe(0.0042 * 35, 35) is None and b.trial is not None  # the first check, then the trial begins


def test_a_given_thread_count_is_kept_while_draining():
    b = Balancer(4, 0.0053, "stub", threads=1, prior=0.0042, ahead=3)
    assert b.draining and b.threads == 1


def test_a_trial_near_tie_goes_to_the_split_with_more_producers():
    """4-clip windows cannot tell a few percent apart; a producer too many costs little (it blocks
    on the full queue), one too few starves the backbone: within SPLIT_TIE, more producers win."""
    b, _ = _two_cores(FakeClock(), {**RATES, (1, 2): 112.0, (2, 2): 110.0})  # 2 + 2 within 2%
    assert (b.split.producers, b.split.threads) == (2, 2)
    assert "1+2 3.20 clips/s, 2+2 3.14" in b.split.reason and "2+2: within 3% of the fastest" in b.split.reason
    b, _ = _two_cores(FakeClock(), {**RATES, (1, 2): 120.0, (2, 2): 110.0})  # 8% apart: the fastest
    assert (b.split.producers, b.split.threads) == (1, 2)
