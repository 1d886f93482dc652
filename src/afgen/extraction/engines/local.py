"""The local engine: producer processes on this machine feed one backbone in this process.

Worker processes decode, compute flow and audio features (producer.py) and stream image
chunks through a bounded queue; the Assembler batches images across clips through the
backbone. A worker that dies mid-clip costs that clip (a failure line); the rest go on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from collections.abc import Iterator

import torch

from afgen.config import ExtractConfig
from afgen.encoders.backbones import Backbone
from afgen.encoders.raft import RaftFlow
from afgen.errors import AfgenError
from afgen.extraction.assemble import Assembler
from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Event, Stats
from afgen.extraction.producer import Settings, produce, worker_loop


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


class ProducerPool:
    """Producer processes (decode, flow, audio: producer.py) feeding this one through a bounded
    queue. They start, import and warm up at once; clips are handed to them by `messages`."""

    def __init__(self, settings: Settings, workers: int, depth: int) -> None:
        ctx = mp.get_context("spawn")
        self.workers = max(1, workers)
        self.jobs, self.results = ctx.Queue(), ctx.Queue(maxsize=depth * max(2, self.workers))
        self.procs = {i: ctx.Process(target=worker_loop, args=(i, self.jobs, self.results, settings, os.getpid()),
                                      daemon=True)
                      for i in range(self.workers)}
        for p in self.procs.values():
            p.start()

    def messages(self, clips: list[Clip], stats: Stats) -> Iterator[tuple]:
        """Producer messages for `clips`, in arrival order; a worker that dies costs its clip."""
        jobs, results, procs = self.jobs, self.results, self.procs
        for clip in clips:
            jobs.put((clip.id, str(clip.path)))
        for _ in procs:
            jobs.put(None)
        in_flight: dict[int, str] = {}
        exited: set[int] = set()
        paths = {c.id: c.path for c in clips}
        while len(exited) < len(procs):
            waited = time.perf_counter()
            try:
                message = results.get(timeout=2.0)
            except queue.Empty:
                stats.waited(time.perf_counter() - waited)
                for i, p in procs.items():
                    if i not in exited and not p.is_alive():  # crashed (e.g. a decoder segfault)
                        exited.add(i)
                        if i in in_flight:
                            cid = in_flight.pop(i)
                            yield ("failed", cid, {}, f"{paths[cid]}: worker process died "
                                   f"(exit code {p.exitcode}) while decoding")
                if len(exited) == len(procs) and not jobs.empty():
                    raise AfgenError("every worker process died; rerun with --workers 0 to see why") from None
                continue
            stats.waited(time.perf_counter() - waited)
            stats.producers_started = True
            kind = message[0]
            if kind == "start":
                in_flight[message[2]] = message[1]
            elif kind == "exit":
                exited.add(message[2])
            else:
                if kind in ("done", "failed"):
                    in_flight = {w: c for w, c in in_flight.items() if c != message[1]}
                yield message

    def close(self) -> None:
        for p in self.procs.values():
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


def configure_threads(workers: int) -> None:
    """Leave the producer processes room: the backbone gets the cores they do not need."""
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores - max(0, workers - 1)))
