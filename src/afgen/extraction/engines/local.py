"""The local engine: producer processes on this machine feed one backbone in this process.

Worker processes decode, compute flow and audio features (producer.py) and stream image
chunks through a bounded queue; the Assembler batches images across clips through the
backbone. A worker that dies mid-clip costs that clip (a failure line); the rest go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from afgen.config import ExtractConfig
from afgen.encoders.backbones import Backbone
from afgen.encoders.raft import RaftFlow
from afgen.extraction.assemble import Assembler
from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Event, Stats
from afgen.extraction.engines.pool import ProducerPool
from afgen.extraction.producer import Settings, produce


def run(todo: list[Clip], settings: Settings, cfg: ExtractConfig, backbone: Backbone,
        flow: RaftFlow | None = None, pool: ProducerPool | None = None,
        stats: Stats | None = None) -> Iterator[Event]:
    """Extract `todo` here: ("done", clip_id, ClipFeatures) or ("failed", clip_id, meta, error) per clip.
    With a learned `flow` (RAFT), flow images are computed here, beside the backbone. `pool`:
    producer processes already started (they warm up while the backbone is built); without
    one, cfg.workers are started now. `stats` collects where this process's time went."""
    stats = stats if stats is not None else Stats()
    own = pool is None and cfg.workers > 0
    if own:
        pool = ProducerPool(settings, min(cfg.workers, len(todo)), cfg.queue_depth)
    configure_threads(pool.workers if pool is not None else 0)
    assembler = Assembler(backbone, flow)
    messages = pool.messages(todo, stats) if pool is not None else _in_process(todo, settings)
    try:
        for message in messages:
            kind, clip_id = message[0], message[1]
            if kind == "images":
                yield from (("done", f.clip_id, f) for f in assembler.add(clip_id, message[2], message[3]))
            elif kind == "done":
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


def configure_threads(workers: int) -> None:
    """Leave the producer processes room: the backbone gets the cores they do not need."""
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - max(0, workers - 1)))
