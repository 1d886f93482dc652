"""How the local engine splits a CPU's cores between producer processes and backbone threads.

Both sides are CPU work on the same cores, so the fastest a run can go is
cores / (producer + backbone core-seconds per image). Each side gets its share of the cores:
the producers' rounded up (a side with slack blocks on the bounded queue and leaves its core to
the other), the backbone's threads rounded to the nearest where they wait for each other at every
layer (a thread more than its cores costs more than one fewer: EfficientNet-Lite0 on one
OpenVINO stream of 2 threads ran 135 img/s beside a producer that needed 0.9 of a core, 170 on
1), rounded up where each thread is a stream of its own (OpenVINO now: a preempted thread stalls
only its stream; on 2 AMX cores 2 threads beat 1 by 20-50% for ResNet50 and EfficientNet-Lite0).
The backbone's cost comes from `--runtime auto`'s measurement (img/s at its threads), the
producers' from the CPU time of the run's own first clips (a prior until then, or what an
earlier run on this machine with these settings measured: cached in producers.json beside the
runtime measurement); the split is checked again as clips come in and changed when the
measurement moved it. The model cannot know how a runtime's threads behave beside busy
producers (on a 2-core AMX Xeon, EfficientNet-Lite0 ran 15% faster on 2 + 2 than on the model's
1 + 1), so after that first check the neighbouring splits are tried on the run's own clips and
the fastest kept (SplitTrial; remembered in splits.json, so a later run starts there untried).
`--workers` and `--threads` keep what they give. Torch-free: pure arithmetic on measurements.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from afgen import config
from afgen.contracts.store import atomic_write_json
from afgen.errors import WriteError
from afgen.provenance import cpu_description

log = logging.getLogger(__name__)

COST_FILE = "producers.json"
SPLIT_FILE = "splits.json"  # a trial's winner per machine, settings and backbone


@dataclass(frozen=True)
class Split:
    """Producer processes and backbone threads, and the line that says why."""

    producers: int
    threads: int
    reason: str


def split(cores: int, backbone_cost: float | None, producer_cost: float, workers: int | None = None,
          threads: int | None = None, backbone_how: str = "", producer_how: str = "",
          most: int | None = None, streams: bool = False) -> Split:
    """The split of `cores` for these costs (core-seconds per image; `backbone_cost` None:
    unknown, then the backbone gets every core the producers leave): each side its share of
    the cores (the producers' rounded up, the backbone's to the nearest, or up with `streams`:
    one stream per thread; never 0); a `workers` or `threads` given is kept; at most `most`
    producers (the clips there are)."""
    if backbone_cost is None or backbone_cost <= 0 or producer_cost <= 0:
        share = None
    else:
        share = producer_cost / (producer_cost + backbone_cost)
    if workers is not None:
        producers = workers
    elif share is None:
        producers = max(1, cores - 1)
    else:
        producers = min(cores, max(1, math.ceil(cores * share - 1e-9)))
    if workers is None and most is not None:
        producers = max(1, min(producers, most))
    threads_given = threads is not None
    if threads is None:
        if producers == 0:
            threads = cores
        elif share is None or workers is not None:  # every core the producers leave, and one more
            threads = max(1, cores - producers + 1)
        else:
            wanted = cores * (1 - share)
            threads = min(cores, max(1, math.ceil(wanted - 1e-9) if streams else math.floor(wanted + 0.5)))
    return Split(producers, threads, _reason(cores, producers, threads, share, backbone_cost, producer_cost,
                                             workers is not None, threads_given, backbone_how, producer_how))


def _reason(cores: int, producers: int, threads: int, share: float | None, backbone_cost: float | None,
            producer_cost: float, workers_given: bool, threads_given: bool, backbone_how: str,
            producer_how: str) -> str:
    split_text = _split_text(cores, producers, threads, workers_given, threads_given)
    if producers == 0:
        return split_text
    if share is None:
        return f"{split_text} (the backbone's speed is not measured: it takes the cores the producers leave)"
    limit = cores / (producer_cost + backbone_cost)
    side = "producers" if share > 0.5 else "backbone"
    return (f"{split_text}: producers {producer_cost * 1000:.2f} core-ms per image ({producer_how}), backbone "
            f"{backbone_cost * 1000:.2f} ({backbone_how}), so the producers need {100 * share:.0f}% of the cores "
            f"and the {side} bound the run; limit {limit:.1f} img/s")


def _split_text(cores: int, producers: int, threads: int, workers_given: bool = False,
                threads_given: bool = False) -> str:
    side = ("producers in this process (--workers 0)" if producers == 0 else
            f"{producers} producer process{'es' if producers != 1 else ''}{' (--workers)' if workers_given else ''}")
    return (f"{side}, {threads} backbone thread{'s' if threads != 1 else ''}"
            f"{' (--threads)' if threads_given else ''} on {cores} core{'s' if cores != 1 else ''}")


def cost_key(settings: dict) -> str:
    """What decides the producers' cost per image: this CPU and what they compute per clip."""
    return json.dumps({"cpu": cpu_description(), "settings": settings}, sort_keys=True, default=str)


def remembered_cost(key: str) -> tuple[float, int] | None:
    """An earlier run's measured producer cost per image for `key`, and over how many clips."""
    entry = _remembered(COST_FILE, key)
    try:
        return (float(entry["cost"]), int(entry["clips"])) if entry else None
    except (ValueError, TypeError, KeyError):
        return None


def remember_cost(key: str, cost: float, clips: int) -> None:
    """Keep the measured cost for the next run (a read-only cache only costs it the prior)."""
    _remember(COST_FILE, key, {"cost": cost, "clips": clips})


def _remembered(name: str, key: str) -> dict | None:
    try:
        entry = json.loads((config.cache_dir() / name).read_text()).get(key)
        return entry if isinstance(entry, dict) else None
    except (OSError, ValueError, AttributeError):
        return None


def _remember(name: str, key: str, entry: dict) -> None:
    path = config.cache_dir() / name
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[key] = entry
    try:
        atomic_write_json(path, data)
    except WriteError as exc:
        log.debug("cannot cache %s (%s)", name, exc)


def neighbours(at: tuple[int, int], cores: int, producers: bool = True, threads: bool = True,
               most: int | None = None) -> list[tuple[int, int]]:
    """The splits a trial tries around `at` (producers, threads): itself, a thread more, a
    producer and a thread more, a producer more (in that order: the extra process starts once),
    within the cores (and the clips there are); a side given (`producers`/`threads` False) is kept."""
    p, t = at
    more_p = producers and p + 1 <= min(cores, cores if most is None else most)
    more_t = threads and t + 1 <= cores
    tried = [(p, t), (p, t + 1) if more_t else None, (p + 1, t + 1) if more_p and more_t else None,
             (p + 1, t) if more_p else None]
    return [s for s in tried if s is not None]


class SplitTrial:
    """Splits tried one after another on the run's own clips: after each switch `settle` clips
    are skipped (processes start, threads are rebuilt), then the backbone's images over the next
    `window` clips are timed on `clock`; the fastest split wins (a near tie: see winner). Pure
    arithmetic on what it is told."""

    def __init__(self, candidates: list[tuple[int, int]], settle: int, window: int,
                 clock: Callable[[], float]) -> None:
        self.candidates, self.settle, self.window = candidates, max(1, settle), max(1, window)
        self.clock = clock
        self.rates: dict[tuple[int, int], float] = {}  # img/s of each split timed
        self.index = self.skipped = self.timed = 0
        self.start: tuple[float, int] = (0.0, 0)

    @property
    def current(self) -> tuple[int, int]:
        return self.candidates[min(self.index, len(self.candidates) - 1)]

    @property
    def done(self) -> bool:
        return self.index >= len(self.candidates)

    def winner(self) -> tuple[int, int]:
        """The fastest split; among those within SPLIT_TIE of it, the one with the most producers
        (then threads): a producer too many blocks on the full queue at little cost, one too few
        starves the backbone, and 4-clip windows cannot tell a few percent apart (on 2 AMX cores
        1+2 and 2+2 timed 2.78 and 2.78 clips/s; over 48 clips 2+2 ran 2.85 against 2.65)."""
        best = max(self.rates.values())
        return max((s for s, r in self.rates.items() if r >= best * (1 - config.SPLIT_TIE)), key=lambda s: (s[0], s[1]))

    def needed(self) -> int:
        """Clips the split on trial still needs (at least; more while a process starts)."""
        if self.skipped < self.settle:
            return self.settle - self.skipped + self.window
        return self.window - self.timed

    def stop(self) -> None:
        self.index = len(self.candidates)

    def clip_finished(self, images: int, settled: bool = True) -> tuple[int, int] | None:
        """A clip's features are done, `images`: the backbone's images so far; `settled`: every
        producer process of this split has started. The split to switch to when this one's
        window is over (the next to try, or the winner), else None."""
        if self.done:
            return None
        now = self.clock()
        if not settled:
            self.skipped = 0
            return None
        if self.skipped < self.settle:
            self.skipped += 1
            self.start, self.timed = (now, images), 0
            return None
        self.timed += 1
        if self.timed < self.window:
            return None
        self.rates[self.current] = (images - self.start[1]) / max(now - self.start[0], 1e-9)
        self.index += 1
        self.skipped = 0
        return self.current if not self.done else self.winner()


class Balancer:
    """The split for a run, re-checked from the producers' measured cost as clips finish
    (after BALANCE_AFTER_CLIPS clips, then at 2x, 4x, ... as many); after the first check, the
    neighbouring splits are tried on the run's clips and the fastest kept (SPLIT_TRIAL), for
    this run and, remembered, the next ones with these settings."""

    def __init__(self, cores: int, backbone_cost: float | None, backbone_how: str = "",
                 workers: int | None = None, threads: int | None = None,
                 prior: float | None = None, after: int | None = None, most: int | None = None,
                 key: str | None = None, split_key: str | None = None,
                 clock: Callable[[], float] = time.perf_counter, ahead: int = 0, streams: bool = False) -> None:
        """`key` (cost_key): where the producers' measured cost is remembered for the next run,
        whose first split then starts from it instead of the prior; `split_key`: where a trial's
        winner is (with the backbone in it), for the next run to start at without a trial.
        `ahead`: clips the producers were given while the runtimes were measured; until the
        backbone is through them (they are mostly produced) it takes every core, and the split
        is neither checked nor tried (their clips would time the backbone alone). `streams`: the
        backbone runs a stream per thread (see split)."""
        self.ahead, self.streams = ahead, streams
        self.cores, self.backbone_cost, self.backbone_how = cores, backbone_cost, backbone_how
        self.workers, self.threads_given, self.most, self.key = workers, threads, most, key
        self.split_key, self.clock = split_key, clock
        earlier = remembered_cost(key) if key is not None and prior is None else None
        prior = config.PRODUCER_COST_PRIOR if prior is None else prior
        self.cpu_seconds, self.images, self.clips = 0.0, 0, 0
        self.next_check = config.BALANCE_AFTER_CLIPS if after is None else after
        self.rebalanced = 0
        self.history = ""  # the last re-balance, said in the reason
        self.trial: SplitTrial | None = None
        self.finished_clips = 0  # clips through the backbone
        self.model: Split | None = None  # the cost model's split a trial started from
        self.tried = ""  # a trial's result, once there is one (this run's or remembered)
        if earlier is not None:
            prior, how = earlier[0], f"measured on {earlier[1]} clips of an earlier run here"
        else:
            how = "assumed until the first clips measure it"
        self.split = split(cores, backbone_cost, prior if earlier is None else earlier[0], workers, threads,
                           backbone_how, how, most, streams)
        won = _remembered(SPLIT_FILE, split_key) if split_key is not None and self._may_trial() else None
        if won is not None:
            try:
                producers = max(1, min(int(won["producers"]), most or cores))
                self.tried = f"chosen by trial in an earlier run here: {won['rates']}"
                self.split = Split(producers, int(won["threads"]), self._won_text(producers, int(won["threads"])))
            except (KeyError, TypeError, ValueError):
                self.tried = ""

    @property
    def draining(self) -> bool:
        """The backbone is still going through the clips handed out early."""
        return self.finished_clips < self.ahead

    @property
    def threads(self) -> int:
        """The backbone's threads now: the split's, or every core while draining (unless --threads)."""
        return self.cores if self.draining and self.threads_given is None else self.split.threads

    @property
    def fixed(self) -> bool:
        """Nothing to decide: both sides given, or the producers run in this process."""
        return self.workers == 0 or (self.workers is not None and self.threads_given is not None)

    def _may_trial(self) -> bool:
        return config.SPLIT_TRIAL and not self.fixed

    def _won_text(self, producers: int, threads: int) -> str:
        return (f"{_split_text(self.cores, producers, threads, self.workers is not None, self.threads_given is not None)}"
                f", {self.tried}")

    def observe(self, cpu_seconds: float | None, images: int) -> Split | None:
        """Count one finished clip (its producer's CPU seconds, the images it gave the backbone);
        the new split when the measurement changes it, else None. Once a trial has begun, the
        split is the trial's."""
        if cpu_seconds is None or images <= 0:
            return None
        self.cpu_seconds += cpu_seconds
        self.images += images
        self.clips += 1
        if self.clips < self.next_check or self.fixed or self.draining:
            return None
        self.next_check *= 2
        cost = self.cpu_seconds / self.images
        if self.key is not None:
            remember_cost(self.key, cost, self.clips)
        if self.trial is not None or self.tried:
            return None
        new = split(self.cores, self.backbone_cost, cost, self.workers, self.threads_given, self.backbone_how,
                    f"measured on {self.clips} clips", self.most, self.streams)
        changed = (new.producers, new.threads) != (self.split.producers, self.split.threads)
        if changed:
            self.rebalanced += 1
            self.history = f"; re-balanced after {self.clips} clips from {self.split.producers} + {self.split.threads}"
        self.split = Split(new.producers, new.threads, new.reason + self.history)
        self._start_trial()
        return self.split if changed else None

    def _start_trial(self) -> None:
        """Try the neighbours of the measured split, if the run has the clips left for it."""
        if not self._may_trial():
            return
        candidates = neighbours((self.split.producers, self.split.threads), self.cores, self.workers is None,
                                self.threads_given is None, self.most)
        settle, window = config.SPLIT_TRIAL_CLIPS
        if len(candidates) < 2 or (self.most is not None and
                                   self.most - self.clips < len(candidates) * (max(1, settle) + max(1, window))):
            return
        self.trial = SplitTrial(candidates, settle, window, self.clock)
        self.model = self.split

    def finished(self, images: int, settled: bool = True) -> Split | None:
        """A clip's features are done (`images`: the backbone's so far; `settled`: every producer
        process has started): during a trial, the split to switch to when one's window is over."""
        self.finished_clips += 1
        if self.finished_clips == self.ahead and self.threads != self.cores:
            return self.split  # through the clips handed out early: the split's threads now
        trial = self.trial
        if trial is None or trial.done:
            return None
        to = trial.clip_finished(images, settled)
        cut = not trial.done and self.most is not None and self.most - self.finished_clips < trial.needed()
        if cut:  # the run ends before this split's window would: the fastest so far
            trial.stop()
            to = trial.winner() if trial.rates else (self.model.producers, self.model.threads)
        if to is None:
            return None
        before = (self.split.producers, self.split.threads)
        if not trial.done:
            self.split = Split(*to, f"{_split_text(self.cores, *to)}: on trial ({self.model.reason})")
            return self.split if to != before else None
        per_clip = self.images / self.clips if self.clips else 1.0
        ranked = sorted(trial.rates.items(), key=lambda kv: -kv[1])
        rates = ", ".join(f"{p}+{t} {r / per_clip:.2f}{' clips/s' if i == 0 else ''}"
                          for i, ((p, t), r) in enumerate(ranked))
        if ranked and to != ranked[0][0]:
            rates += f" ({to[0]}+{to[1]}: within {config.SPLIT_TIE:.0%} of the fastest, with more producers)"
        if self.split_key is not None and trial.rates:  # cut short: the next run starts at the best timed, untried
            _remember(SPLIT_FILE, self.split_key, {"producers": to[0], "threads": to[1], "rates": rates + (
                f" ({len(trial.candidates) - len(trial.rates)} split(s) untried: that run ended)" if cut else "")})
        self.tried = (f"chosen by trial ({trial.window} clips each{', cut short by the end of the run' if cut else ''})"
                      f": {rates or 'none timed'}")
        self.split = Split(*to, f"{self._won_text(*to)}; the cost model said {self.model.reason}")
        return self.split if to != before else None
