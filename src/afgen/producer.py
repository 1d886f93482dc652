"""The CPU side of extraction: decode, optical flow and audio features for one clip.

It streams chunks of RGB and flow images as messages, so memory is bounded by the chunk
size, not the clip length. It imports no torch: worker processes start fast and stay small.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from afgen.audio import get_encoder
from afgen.config import AudioFeatureConfig, FlowConfig, VideoConfig
from afgen.errors import AfgenError
from afgen.flow import gray, make_encoder, make_flow
from afgen.video import ClipReader


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
    start = time.perf_counter()
    meta: dict = {"fps_src": None}
    try:
        with ClipReader(path, settings.video) as clip:  # opened once: frames and audio in one pass
            meta["fps_src"] = round(clip.info.fps, 3)
            learned = settings.flow.algorithm in ("raft", "raft_small")  # computed beside the backbone instead
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
        meta.update(t=len(times), has_audio=audio.present, audio_missing=audio.missing_reason,
                    seconds=round(time.perf_counter() - start, 3))
        yield ("done", clip_id, meta, arrays)
    except AfgenError as exc:
        meta["seconds"] = round(time.perf_counter() - start, 3)
        yield ("failed", clip_id, meta, str(exc))


def worker_loop(worker: int, jobs, results, settings: Settings) -> None:
    """A worker process: take (clip_id, path) jobs until None, put messages on `results`."""
    import cv2

    cv2.setNumThreads(1)
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
