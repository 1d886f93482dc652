"""Decode clips with PyAV: frames sampled at a target rate by timestamp, and the audio track.

Sampling is by presentation time from the stream start, so a 3.0 s clip gives 18 frames at
6 fps whatever its native rate (24, 25, 29.97, 50, 59.94 fps, or variable). A clip slower
than the target rate gives every frame. Nothing is written to disk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from afgen.config import VideoConfig
from afgen.errors import VideoError

log = logging.getLogger(__name__)

#: Timestamps closer than this (seconds) are treated as equal, absorbing time-base rounding.
_EPS = 1e-4


@dataclass(frozen=True)
class Frame:
    """One sampled frame: its index among sampled frames, time from the stream start, RGB."""

    index: int
    time: float
    rgb: np.ndarray  # [H, W, 3] uint8


@dataclass(frozen=True)
class AudioTrack:
    """Mono float32 samples at `rate`, or None with the reason when the audio is missing."""

    samples: np.ndarray | None
    rate: int
    missing_reason: str | None = None

    @property
    def present(self) -> bool:
        return self.samples is not None

    @property
    def seconds(self) -> float:
        return 0.0 if self.samples is None else len(self.samples) / self.rate


@dataclass(frozen=True)
class ClipInfo:
    """What the container says about a clip's video stream."""

    fps: float
    duration: float | None
    width: int
    height: int
    has_audio: bool


@dataclass(frozen=True)
class DecodedClip:
    """All sampled frames of a clip with their times, and the audio track."""

    frames: np.ndarray  # [t, H, W, 3] uint8
    times: np.ndarray  # [t] seconds from the stream start
    info: ClipInfo
    audio: AudioTrack


class TimestampSampler:
    """Decides which decoded frames to keep when sampling at `fps` by timestamp.

    Frame i stands for the interval [time_i, time_{i+1}); it is kept when a target time k/fps
    falls in that interval. Each frame is kept at most once, so a clip slower than `fps`
    keeps every frame, and the first frame also covers any targets before it.
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._k = 0

    def keep(self, upper: float) -> bool:
        """Whether the frame whose interval ends at `upper` (seconds) is kept."""
        if self._k / self.fps >= upper - _EPS:
            return False
        while self._k / self.fps < upper - _EPS:
            self._k += 1
        return True


def _open(path: Path):
    if not path.exists():
        raise VideoError("file not found; check the dataset path", path)
    if path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes); re-download or remove the clip", path)
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"not a readable video container ({exc}); the file is damaged "
                         "or not a video", path) from exc


def probe(path: str | Path) -> ClipInfo:
    """Frame rate, declared duration, size and audio presence, without decoding."""
    path = Path(path)
    with _open(path) as container:
        return _info(container, path)


def _info(container, path: Path) -> ClipInfo:
    if not container.streams.video:
        raise VideoError("no video stream (an audio-only or data file?)", path)
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    return ClipInfo(
        fps=float(rate) if rate else 0.0,
        duration=duration,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        has_audio=bool(container.streams.audio),
    )


def iter_frames(path: str | Path, cfg: VideoConfig = VideoConfig()) -> Iterator[Frame]:
    """Yield the sampled frames of a clip one at a time (memory does not grow with length).

    Raises VideoError, naming the file, for unreadable, truncated or too-short clips; the
    error may come after some frames were yielded, so callers must not keep partial output.
    """
    path = Path(path)
    with _open(path) as container:
        info = _info(container, path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = cfg.decoder_threads
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
        fallback_step = 1.0 / info.fps if info.fps > 0 else 1.0 / cfg.fps

        sampler = TimestampSampler(cfg.fps)
        prev, prev_time, last_step = None, None, None
        kept, decoded = 0, 0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else decoded * fallback_step
                decoded += 1
                if origin is None:
                    origin = t
                t -= origin
                if prev is not None:
                    if t <= prev_time:  # out-of-order or duplicate timestamp: keep the first
                        continue
                    last_step = t - prev_time
                    if sampler.keep(t):
                        yield Frame(kept, prev_time, _to_rgb(prev, cfg))
                        kept += 1
                prev, prev_time = frame, t
        except av.error.FFmpegError as exc:
            raise VideoError(f"decoding failed after {decoded} frames ({exc}); the file "
                             "is damaged", path) from exc
        if prev is None:
            raise VideoError("no decodable video frames; the file is damaged or empty", path)
        step = last_step or fallback_step
        end = prev_time + step
        # The last frame counts for targets in its first half only, so a clip whose frame
        # count rounds up (90 frames at 29.97 fps last 3.003 s) gets no extra frame for 3 ms.
        if sampler.keep(prev_time + step / 2):
            yield Frame(kept, prev_time, _to_rgb(prev, cfg))
            kept += 1
        if kept < 2:
            raise VideoError(
                f"only {kept} frame(s) at {cfg.fps:g} fps ({decoded} decoded); at least 2 are "
                "needed for optical flow", path)
        if info.duration and end < cfg.min_decoded_fraction * info.duration:
            raise VideoError(
                f"truncated: decoded {end:.2f} s of the {info.duration:.2f} s the container "
                "declares; re-download the clip", path)


def _to_rgb(frame, cfg: VideoConfig) -> np.ndarray:
    return frame.to_ndarray(format="rgb24", width=cfg.width, height=cfg.height)


def read_audio(path: str | Path, rate: int = VideoConfig.audio_rate) -> AudioTrack:
    """The clip's first audio track as mono float32 at `rate` Hz.

    A clip without an audio stream, or whose audio cannot be decoded, returns an AudioTrack
    with samples None and the reason: missing audio is data, not an error.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            return AudioTrack(None, rate, "no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler follow sample counts, not gaps
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("%s: audio stream unreadable (%s); treating the audio as missing", path, exc)
            return AudioTrack(None, rate, f"audio stream unreadable: {exc}")
        declared = (float(stream.duration * stream.time_base)
                    if stream.duration is not None and stream.time_base is not None else None)
    if not chunks or sum(len(c) for c in chunks) == 0:
        return AudioTrack(None, rate, "audio stream has no samples")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    if declared:  # drop the codec's padding after the declared end (AAC pads to 1024 samples)
        samples = samples[: int(round(declared * rate))]
    return AudioTrack(samples, rate)


def decode_clip(path: str | Path, cfg: VideoConfig = VideoConfig(), audio: bool = True) -> DecodedClip:
    """Every sampled frame of a clip in one array, with its audio track (for short clips)."""
    path = Path(path)
    frames = list(iter_frames(path, cfg))
    track = read_audio(path, cfg.audio_rate) if audio else AudioTrack(None, cfg.audio_rate, "not read")
    return DecodedClip(
        frames=np.stack([f.rgb for f in frames]),
        times=np.array([f.time for f in frames]),
        info=probe(path),
        audio=track,
    )
