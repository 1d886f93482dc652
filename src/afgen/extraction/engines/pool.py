"""Producer processes (decode, flow, audio: producer.py) for the local engine, in a module that
never imports torch: `afgen extract` starts them before it loads the backbone's libraries, so
their start-up (spawn, imports, the audio encoder's warm-up) overlaps the main process's."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import signal
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from afgen.config import DEFAULT_WORKERS, AudioFeatureConfig, ExtractConfig, FlowConfig, VideoConfig
from afgen.errors import AfgenError
from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Stats
from afgen.extraction.producer import Settings, worker_loop


class ProducerPool:
    """Producer processes (decode, flow, audio: producer.py) feeding this one through a bounded
    queue. They start, import and warm up at once; clips are handed to them by `messages`, a
    few at a time, so `resize` can add processes or retire some (after their current clip)
    while it runs. `ahead` hands out the first clips before that, with room for their messages
    beyond the bound, so the producers work while this process measures its runtimes
    (issue 29's dead start); `paused` stops them while it times."""

    def __init__(self, settings: Settings, workers: int, depth: int) -> None:
        self.ctx = mp.get_context("spawn")
        self.settings, self.depth = settings, depth
        self.jobs = self.ctx.Queue()
        self.results = self.ctx.Queue()
        # the bound: a producer takes a credit per message, this process gives it back when it
        # reads one (not while `owed`: the extra room `ahead` gave, taken back as it is read)
        self.room = self.ctx.Semaphore(depth * max(2, workers))
        self.owed = 0
        self.handed: list[Clip] = []  # clips handed out by `ahead`, until `messages` takes them over
        self.procs: dict[int, mp.process.BaseProcess] = {}
        self.retiring = 0  # stop signals queued for processes that have not taken them yet
        self.exited: set[int] = set()
        self.started: set[int] = set()  # processes that took a clip (warmed up)
        self.ended = False  # every clip handed out
        for _ in range(max(1, workers)):
            self._start_one()

    @property
    def workers(self) -> int:
        """Processes working (or starting), not counting those told to stop."""
        return len(self.procs) - len(self.exited) - self.retiring

    @property
    def settled(self) -> bool:
        """Every process working has started (taken its first clip): none is still warming up."""
        return len(self.started - self.exited) >= self.workers

    def _start_one(self) -> None:
        i = len(self.procs)
        p = self.ctx.Process(target=worker_loop, args=(i, self.jobs, self.results, self.settings, os.getpid(),
                                                       self.room), daemon=True)
        self.procs[i] = p
        p.start()

    def resize(self, workers: int) -> None:
        """Run `workers` processes: start the missing ones (they warm up while the others work),
        or tell the extra ones to stop after their current clip (a stop signal on the job queue,
        even before `messages`: one killed while it waited on the queue would keep its lock)."""
        workers = max(1, workers)
        if self.ended:  # every clip is handed out: the processes there finish the run
            return
        while self.workers < workers:
            self._start_one()
        while self.workers > workers:
            self.jobs.put(None)  # whichever process takes it next stops
            self.retiring += 1

    def ahead(self, clips: list[Clip]) -> None:
        """Hand `clips` out now, before `messages` (which must then be given them too), with room
        for their messages beyond the bound (as many as a 3-s clip sends: AHEAD_CLIPS' estimate):
        the producers work on them while this process is busy."""
        for clip in clips:
            self.jobs.put((clip.id, str(clip.path)))
        self.handed += clips
        room = len(clips) * messages_per_clip(self.settings, seconds=3.0)
        for _ in range(room):
            self.room.release()
        self.owed += room

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The producer processes stopped (SIGSTOP) for the block, then continued: a measurement
        times the backbone alone while they work around it. Nothing is lost; elsewhere a no-op."""
        stop = getattr(signal, "SIGSTOP", None)
        stopped = []
        try:
            for i, p in self.procs.items():
                if stop is not None and i not in self.exited and p.pid is not None and p.is_alive():
                    stopped.append(p.pid)  # first: a signal between the two lines must not leave it stopped
                    os.kill(p.pid, stop)
            yield
        finally:
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass

    def _read(self, timeout: float) -> tuple:
        message = self.results.get(timeout=timeout)
        if self.owed:
            self.owed -= 1
        else:
            self.room.release()
        return message

    def messages(self, clips: list[Clip], stats: Stats) -> Iterator[tuple]:
        """Producer messages for `clips`, in arrival order; a worker that dies costs its clip.
        Clips handed out by `ahead` are not handed out again; one of them not in `clips` is
        dropped (its messages are not yielded)."""
        jobs, procs = self.jobs, self.procs
        handed, self.handed = self.handed, []
        early = {c.id for c in handed}
        pending = deque(c for c in clips if c.id not in early)
        queued = len(handed)  # jobs put but not yet started
        wanted = {c.id for c in clips}

        def feed() -> None:
            nonlocal queued
            while pending and queued < max(1, self.workers) + 1:
                clip = pending.popleft()
                jobs.put((clip.id, str(clip.path)))
                queued += 1
            if not pending and not self.ended:
                self.ended = True
                for _ in range(len(procs) - len(self.exited) - self.retiring):
                    jobs.put(None)

        feed()
        in_flight: dict[int, str] = {}
        paths = {c.id: c.path for c in [*handed, *clips]}
        while len(self.exited) < len(procs):
            waited = time.perf_counter()
            try:
                message = self._read(timeout=2.0)
            except queue.Empty:
                stats.waited(time.perf_counter() - waited)
                for i, p in procs.items():
                    if i not in self.exited and not p.is_alive():  # crashed (e.g. a decoder segfault)
                        self.exited.add(i)
                        if i in in_flight:
                            cid = in_flight.pop(i)
                            if cid in wanted:
                                yield ("failed", cid, {}, f"{paths[cid]}: worker process died "
                                       f"(exit code {p.exitcode}) while decoding")
                if len(self.exited) == len(procs) and (pending or not jobs.empty()):
                    raise AfgenError("every worker process died; rerun with --workers 0 to see why") from None
                continue
            stats.waited(time.perf_counter() - waited)
            stats.producers_started = True
            kind = message[0]
            if kind == "start":
                in_flight[message[2]] = message[1]
                self.started.add(message[2])
                queued -= 1
                feed()
            elif kind == "exit":
                self.exited.add(message[2])
                if not self.ended:  # a retired process: its stop signal is spent
                    self.retiring -= 1
                feed()
            else:
                if kind in ("done", "failed"):
                    in_flight = {w: c for w, c in in_flight.items() if c != message[1]}
                if message[1] in wanted:
                    yield message

    def close(self) -> None:
        for p in self.procs.values():
            if p.is_alive():
                p.terminate()
                if p.pid is not None and hasattr(signal, "SIGCONT"):  # a stopped process acts on it once continued
                    try:
                        os.kill(p.pid, signal.SIGCONT)
                    except ProcessLookupError:
                        pass
            p.join(timeout=5)


def messages_per_clip(settings: Settings, seconds: float) -> int:
    """The messages a producer sends for a clip `seconds` long: start, its RGB and flow chunks, done."""
    frames = max(1, math.ceil(settings.video.fps * seconds))
    return 2 + math.ceil(frames / settings.chunk) + math.ceil(max(1, frames - 1) / settings.chunk)


def producer_settings(cfg: ExtractConfig, video: VideoConfig, flow: FlowConfig, audio: AudioFeatureConfig) -> Settings:
    """What each producer process computes per clip (decode, flow, audio) for these settings."""
    return Settings(video=video, flow=flow, audio=audio, chunk=cfg.batch_for("cpu"))


def start_producers(cfg: ExtractConfig, video: VideoConfig, flow: FlowConfig, audio: AudioFeatureConfig,
                    n_clips: int) -> ProducerPool | None:
    """The local engine's producer processes, started now (None for Ray, --workers 0 or no clips)."""
    workers = min(DEFAULT_WORKERS if cfg.workers is None else cfg.workers, n_clips)
    if cfg.engine != "local" or workers <= 0:
        return None
    return ProducerPool(producer_settings(cfg, video, flow, audio), workers, cfg.queue_depth)
