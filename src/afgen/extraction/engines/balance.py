"""How the local engine splits a CPU's cores between producer processes and backbone threads.

Both sides are CPU work on the same cores, so the fastest a run can go is
cores / (producer + backbone core-seconds per image). Each side gets its share of the cores:
the producers' rounded up (a side with slack blocks on the bounded queue and leaves its core to
the other), the backbone's threads rounded to the nearest (they wait for each other at every
layer, so a thread more than its cores costs more than one fewer: EfficientNet-Lite0 on
OpenVINO bf16 ran 135 img/s on 2 threads beside a producer that needed 0.9 of a core, 170 on 1).
The backbone's cost comes from `--runtime auto`'s measurement (img/s at its threads), the
producers' from the CPU time of the run's own first clips (a prior until then, or what an
earlier run on this machine with these settings measured: cached in producers.json beside the
runtime measurement); the split is checked again as clips come in and changed when the
measurement moved it.
`--workers` and `--threads` keep what they give. Torch-free: pure arithmetic on measurements.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

from afgen import config
from afgen.contracts.store import atomic_write_json
from afgen.errors import WriteError
from afgen.provenance import cpu_description

log = logging.getLogger(__name__)

COST_FILE = "producers.json"


@dataclass(frozen=True)
class Split:
    """Producer processes and backbone threads, and the line that says why."""

    producers: int
    threads: int
    reason: str


def split(cores: int, backbone_cost: float | None, producer_cost: float, workers: int | None = None,
          threads: int | None = None, backbone_how: str = "", producer_how: str = "",
          most: int | None = None) -> Split:
    """The split of `cores` for these costs (core-seconds per image; `backbone_cost` None:
    unknown, then the backbone gets every core the producers leave): each side its share of
    the cores (the producers' rounded up, the backbone's to the nearest, never 0); a `workers`
    or `threads` given is kept; at most `most` producers
    (the clips there are)."""
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
            threads = min(cores, max(1, math.floor(cores * (1 - share) + 0.5)))
    return Split(producers, threads, _reason(cores, producers, threads, share, backbone_cost, producer_cost,
                                             workers is not None, threads_given, backbone_how, producer_how))


def _reason(cores: int, producers: int, threads: int, share: float | None, backbone_cost: float | None,
            producer_cost: float, workers_given: bool, threads_given: bool, backbone_how: str,
            producer_how: str) -> str:
    side = ("producers in this process (--workers 0)" if producers == 0 else
            f"{producers} producer process{'es' if producers != 1 else ''}{' (--workers)' if workers_given else ''}")
    split_text = (f"{side}, {threads} backbone thread{'s' if threads != 1 else ''}"
                  f"{' (--threads)' if threads_given else ''} on {cores} core{'s' if cores != 1 else ''}")
    if producers == 0:
        return split_text
    if share is None:
        return f"{split_text} (the backbone's speed is not measured: it takes the cores the producers leave)"
    limit = cores / (producer_cost + backbone_cost)
    side = "producers" if share > 0.5 else "backbone"
    return (f"{split_text}: producers {producer_cost * 1000:.2f} core-ms per image ({producer_how}), backbone "
            f"{backbone_cost * 1000:.2f} ({backbone_how}), so the producers need {100 * share:.0f}% of the cores "
            f"and the {side} bound the run; limit {limit:.1f} img/s")


def cost_key(settings: dict) -> str:
    """What decides the producers' cost per image: this CPU and what they compute per clip."""
    return json.dumps({"cpu": cpu_description(), "settings": settings}, sort_keys=True, default=str)


def remembered_cost(key: str) -> tuple[float, int] | None:
    """An earlier run's measured producer cost per image for `key`, and over how many clips."""
    try:
        entry = json.loads((config.cache_dir() / COST_FILE).read_text()).get(key)
        return (float(entry["cost"]), int(entry["clips"])) if entry else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def remember_cost(key: str, cost: float, clips: int) -> None:
    """Keep the measured cost for the next run (a read-only cache only costs it the prior)."""
    path = config.cache_dir() / COST_FILE
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[key] = {"cost": cost, "clips": clips}
    try:
        atomic_write_json(path, data)
    except WriteError as exc:
        log.debug("cannot cache the producers' cost (%s)", exc)


class Balancer:
    """The split for a run, re-checked from the producers' measured cost as clips finish
    (after BALANCE_AFTER_CLIPS clips, then at 2x, 4x, ... as many)."""

    def __init__(self, cores: int, backbone_cost: float | None, backbone_how: str = "",
                 workers: int | None = None, threads: int | None = None,
                 prior: float | None = None, after: int | None = None, most: int | None = None,
                 key: str | None = None) -> None:
        """`key` (cost_key): where the producers' measured cost is remembered for the next run,
        whose first split then starts from it instead of the prior."""
        self.cores, self.backbone_cost, self.backbone_how = cores, backbone_cost, backbone_how
        self.workers, self.threads, self.most, self.key = workers, threads, most, key
        earlier = remembered_cost(key) if key is not None and prior is None else None
        prior = config.PRODUCER_COST_PRIOR if prior is None else prior
        self.cpu_seconds, self.images, self.clips = 0.0, 0, 0
        self.next_check = config.BALANCE_AFTER_CLIPS if after is None else after
        self.rebalanced = 0
        self.history = ""  # the last re-balance, said in the reason
        if earlier is not None:
            prior, how = earlier[0], f"measured on {earlier[1]} clips of an earlier run here"
        else:
            how = "assumed until the first clips measure it"
        self.split = split(cores, backbone_cost, prior if earlier is None else earlier[0], workers, threads,
                           backbone_how, how, most)

    @property
    def fixed(self) -> bool:
        """Nothing to decide: both sides given, or the producers run in this process."""
        return self.workers == 0 or (self.workers is not None and self.threads is not None)

    def observe(self, cpu_seconds: float | None, images: int) -> Split | None:
        """Count one finished clip (its producer's CPU seconds, the images it gave the backbone);
        the new split when the measurement changes it, else None."""
        if cpu_seconds is None or images <= 0:
            return None
        self.cpu_seconds += cpu_seconds
        self.images += images
        self.clips += 1
        if self.clips < self.next_check or self.fixed:
            return None
        self.next_check *= 2
        cost = self.cpu_seconds / self.images
        if self.key is not None:
            remember_cost(self.key, cost, self.clips)
        new = split(self.cores, self.backbone_cost, cost, self.workers, self.threads, self.backbone_how,
                    f"measured on {self.clips} clips", self.most)
        changed = (new.producers, new.threads) != (self.split.producers, self.split.threads)
        if changed:
            self.rebalanced += 1
            self.history = f"; re-balanced after {self.clips} clips from {self.split.producers} + {self.split.threads}"
        self.split = Split(new.producers, new.threads, new.reason + self.history)
        return self.split if changed else None
