"""The CPU side of extraction: decode, optical flow and audio features for one clip.

It streams chunks of RGB and flow images as messages, so memory is bounded by the chunk
size, not the clip length. It imports no torch: worker processes start fast and stay small.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from afgen.config import AudioFeatureConfig, FlowConfig, VideoConfig
from afgen.encoders.audio import get_encoder
from afgen.encoders.flows import gray, is_learned, make_encoder, make_flow
from afgen.errors import AfgenError
from afgen.extraction.video import ClipReader
from afgen.lifecycle import die_with_parent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Everything a producer needs, picklable for worker processes."""

    video: VideoConfig
    flow: FlowConfig
    audio: AudioFeatureConfig
    chunk: int


# Messages: ("images", clip_id, "rgb"|"flow", uint8 [n, H, W, 3])
#           ("done", clip_id, meta, {"audio": [A], "audio_frames": [t, B]} or {})
#           ("failed", clip_id, meta, error)


def produce(clip_id: str, path: Path, settings: Settings) -> Iterator[tuple]:
    """Messages for one clip; a bad clip ends with a "failed" message, never an exception."""
    start, cpu = time.perf_counter(), time.process_time()
    meta: dict = {"fps_src": None}
    try:
        with ClipReader(path, settings.video) as clip:  # opened once: frames and audio in one pass
            meta["fps_src"] = round(clip.info.fps, 3)
            learned = is_learned(settings.flow)  # computed beside the backbone instead
            flow_fn, encode = (None, None) if learned else (make_flow(settings.flow), make_encoder(settings.flow))
            rgb, flows, times, previous = [], [], [], None
            for frame in clip.frames():
                times.append(frame.time)
                rgb.append(frame.rgb)
                if flow_fn is not None:
                    current = gray(frame.rgb)
                    if previous is not None:
                        flows.append(encode(flow_fn(previous, current)))
                    previous = current
                if len(rgb) == settings.chunk:
                    yield ("images", clip_id, "rgb", np.stack(rgb))
                    rgb = []
                if len(flows) == settings.chunk:
                    yield ("images", clip_id, "flow", np.stack(flows))
                    flows = []
            if rgb:
                yield ("images", clip_id, "rgb", np.stack(rgb))
            if flows:
                yield ("images", clip_id, "flow", np.stack(flows))
            audio = clip.audio()
        arrays = {}
        if audio.present:
            # One BLAS thread: the same bytes in every engine, whatever threads its workers get.
            with threadpool_limits(limits=1, user_api="blas"):
                feats = get_encoder(settings.audio.encoder, settings.audio).encode(
                    audio.samples, audio.rate, times, 1.0 / settings.video.fps)
            arrays = {"audio": feats.clip, "audio_frames": feats.frames}
        # cpu_seconds: this process's CPU time for the clip (one thread per producer process:
        # its core-seconds), what the local engine balances the cores by (engines/balance.py)
        meta.update(t=len(times), has_audio=audio.present, audio_missing=audio.missing_reason,
                    seconds=round(time.perf_counter() - start, 3), cpu_seconds=round(time.process_time() - cpu, 3))
        yield ("done", clip_id, meta, arrays)
    except AfgenError as exc:
        meta["seconds"] = round(time.perf_counter() - start, 3)
        yield ("failed", clip_id, meta, str(exc))


def warm_up(settings: Settings) -> None:
    """Pay a process's one-off costs before its first clip: the audio encoder's first call
    (librosa's lazy imports and numba compilation, ~3 s; a learned encoder's weights) and the
    flow's set-up, so that they overlap the backbone's build instead of delaying clip one.
    Computes nothing that is kept; a failure here shows up again on the first clip."""
    try:
        rate, fps = settings.video.audio_rate, settings.video.fps
        with threadpool_limits(limits=1, user_api="blas"):
            get_encoder(settings.audio.encoder, settings.audio).encode(
                np.zeros(rate, np.float32), rate, [0.0, 1.0 / fps], 1.0 / fps)
        if not is_learned(settings.flow):
            still = np.zeros((32, 32), np.uint8)
            make_encoder(settings.flow)(make_flow(settings.flow)(still, still))
    except Exception as exc:  # noqa: BLE001 - reported per clip, where it names the clip
        log.debug("warm-up failed (%s); the first clip will report it", exc)


def worker_loop(worker: int, jobs, results, settings: Settings, parent: int | None = None, room=None) -> None:
    """A worker process: warm up, then take (clip_id, path) jobs until None, putting messages
    on `results`, each after taking a credit from `room` (a semaphore: the queue's bound, None:
    unbounded). It dies with `parent` (the extracting process), however that ends."""
    import cv2

    die_with_parent(parent)
    if room is not None:
        results = _Bounded(results, room)

    cv2.setNumThreads(1)
    warm_up(settings)
    while True:
        job = jobs.get()
        if job is None:
            break
        clip_id, path = job
        results.put(("start", clip_id, worker))
        try:
            for message in produce(clip_id, Path(path), settings):
                results.put(message)
        except Exception as exc:  # a bug or a library crash: record it, keep the worker alive
            results.put(("failed", clip_id, {}, f"{path}: unexpected {type(exc).__name__}: {exc}"))
    results.put(("exit", None, worker))


class _Bounded:
    """`results.put` after taking a credit from `room` (the pool's bound on messages in flight)."""

    def __init__(self, results, room) -> None:
        self.results, self.room = results, room

    def put(self, message: tuple) -> None:
        self.room.acquire()
        self.results.put(message)
