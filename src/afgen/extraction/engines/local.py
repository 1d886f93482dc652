"""The local engine: producer processes on this machine feed one backbone in this process.

Worker processes decode, compute flow and audio features (producer.py) and stream image
chunks through a bounded queue; the Assembler batches images across clips through the
backbone. A worker that dies mid-clip costs that clip (a failure line); the rest go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import torch

from afgen.config import DEFAULT_WORKERS, ExtractConfig
from afgen.encoders.backbones import Backbone, set_threads
from afgen.encoders.raft import RaftFlow
from afgen.extraction.assemble import Assembler
from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Event, Stats
from afgen.extraction.engines.balance import Balancer
from afgen.extraction.engines.pool import ProducerPool
from afgen.extraction.producer import Settings, produce

log = logging.getLogger(__name__)


def run(todo: list[Clip], settings: Settings, cfg: ExtractConfig, backbone: Backbone,
        flow: RaftFlow | None = None, pool: ProducerPool | None = None,
        stats: Stats | None = None, balancer: Balancer | None = None) -> Iterator[Event]:
    """Extract `todo` here: ("done", clip_id, ClipFeatures) or ("failed", clip_id, meta, error) per clip.
    With a learned `flow` (RAFT), flow images are computed here, beside the backbone. `pool`:
    producer processes already started (they warm up while the backbone is built); without
    one, the balancer's (or cfg.workers) are started now. `balancer`: the split of the cores
    (balance.py), re-checked from the producers' cost as clips finish; without one, the backbone
    gets the cores the producers leave. `stats` collects where this process's time went."""
    stats = stats if stats is not None else Stats()
    workers = balancer.split.producers if balancer is not None else initial_workers(cfg)
    own = pool is None and workers > 0
    if own:
        pool = ProducerPool(settings, min(workers, len(todo)), cfg.queue_depth)
    if balancer is not None:
        set_threads(backbone, balancer.split.threads)
        stats.split = balancer.split.reason
    else:
        configure_threads(pool.workers if pool is not None else 0)
    assembler = Assembler(backbone, flow)
    messages = pool.messages(todo, stats) if pool is not None else _in_process(todo, settings)
    try:
        for message in messages:
            kind, clip_id = message[0], message[1]
            if kind == "images":
                yield from (("done", f.clip_id, f) for f in assembler.add(clip_id, message[2], message[3]))
            elif kind == "done":
                if balancer is not None and pool is not None:
                    _rebalance(balancer, message[2], pool, backbone, stats)
                yield from (("done", f.clip_id, f) for f in assembler.finish(clip_id, message[2], message[3]))
            elif kind == "failed":
                assembler.drop(clip_id)
                yield ("failed", clip_id, message[2], message[3])
        yield from (("done", f.clip_id, f) for f in assembler.flush())
    finally:
        stats.backbone_seconds += assembler.seconds
        if own:
            pool.close()


def _in_process(clips: list[Clip], settings: Settings) -> Iterator[tuple]:
    for clip in clips:
        yield from produce(clip.id, clip.path, settings)


def _rebalance(balancer: Balancer, meta: dict, pool: ProducerPool, backbone: Backbone, stats: Stats) -> None:
    """Count a finished clip's producer cost; apply the split when the measurement changed it."""
    frames = meta.get("t") or 0
    new = balancer.observe(meta.get("cpu_seconds"), 2 * frames - 1 if frames else 0)
    stats.split = balancer.split.reason
    if new is None:
        return
    log.info("re-balancing: %s", new.reason)
    pool.resize(new.producers)
    set_threads(backbone, new.threads)


def initial_workers(cfg: ExtractConfig) -> int:
    """Producer processes to start before anything is measured: --workers, else every core but one."""
    return DEFAULT_WORKERS if cfg.workers is None else cfg.workers


def measuring_threads(cfg: ExtractConfig, n_clips: int) -> int:
    """The backbone's threads while `--runtime auto` measures: --threads, else the cores
    --workers leave (and one more), else every core (the split then follows the measurement)."""
    cores = os.cpu_count() or 1
    if cfg.threads is not None:
        return cfg.threads
    if cfg.workers is not None:
        return max(1, cores - max(0, min(cfg.workers, n_clips) - 1))
    return cores


def configure_threads(workers: int) -> None:
    """Leave the producer processes room: the backbone gets the cores they do not need."""
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - max(0, workers - 1)))
