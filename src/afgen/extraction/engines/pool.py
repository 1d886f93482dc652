"""Producer processes (decode, flow, audio: producer.py) for the local engine, in a module that
never imports torch: `afgen extract` starts them before it loads the backbone's libraries, so
their start-up (spawn, imports, the audio encoder's warm-up) overlaps the main process's."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from collections.abc import Iterator

from afgen.config import AudioFeatureConfig, ExtractConfig, FlowConfig, VideoConfig
from afgen.errors import AfgenError
from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Stats
from afgen.extraction.producer import Settings, worker_loop


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


def producer_settings(cfg: ExtractConfig, video: VideoConfig, flow: FlowConfig, audio: AudioFeatureConfig) -> Settings:
    """What each producer process computes per clip (decode, flow, audio) for these settings."""
    return Settings(video=video, flow=flow, audio=audio, chunk=cfg.batch_for("cpu"))


def start_producers(cfg: ExtractConfig, video: VideoConfig, flow: FlowConfig, audio: AudioFeatureConfig,
                    n_clips: int) -> ProducerPool | None:
    """The local engine's producer processes, started now (None for Ray, --workers 0 or no clips)."""
    workers = min(cfg.workers, n_clips)
    if cfg.engine != "local" or workers <= 0:
        return None
    return ProducerPool(producer_settings(cfg, video, flow, audio), workers, cfg.queue_depth)
