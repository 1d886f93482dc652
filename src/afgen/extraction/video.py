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


class _Sampling:
    """Decoded video frames in, sampled `Frame`s out; the checks a finished clip must pass."""

    def __init__(self, path: Path, info: ClipInfo, stream, cfg: VideoConfig) -> None:
        self.path, self.info, self.cfg = path, info, cfg
        self.origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
        self.fallback_step = 1.0 / info.fps if info.fps > 0 else 1.0 / cfg.fps
        self.sampler = TimestampSampler(cfg.fps)
        self.prev, self.prev_time, self.last_step = None, None, None
        self.kept, self.decoded = 0, 0

    def push(self, frame) -> Frame | None:
        t = float(frame.time) if frame.time is not None else self.decoded * self.fallback_step
        self.decoded += 1
        if self.origin is None:
            self.origin = t
        t -= self.origin
        out = None
        if self.prev is not None:
            if t <= self.prev_time:  # out-of-order or duplicate timestamp: keep the first
                return None
            self.last_step = t - self.prev_time
            if self.sampler.keep(t):
                out = self._emit()
        self.prev, self.prev_time = frame, t
        return out

    def _emit(self) -> Frame:
        frame = Frame(self.kept, self.prev_time, _to_rgb(self.prev, self.cfg))
        self.kept += 1
        return frame

    def failed(self, exc: Exception) -> VideoError:
        return VideoError(f"decoding failed after {self.decoded} frames ({exc}); the file is damaged", self.path)

    def finish(self) -> Frame | None:
        """The last frame if it is sampled; raises VideoError for too-short or truncated clips."""
        cfg, path = self.cfg, self.path
        if self.prev is None:
            raise VideoError("no decodable video frames; the file is damaged or empty", path)
        step = self.last_step or self.fallback_step
        end = self.prev_time + step
        # The last frame counts for targets in its first half only, so a clip whose frame
        # count rounds up (90 frames at 29.97 fps last 3.003 s) gets no extra frame for 3 ms.
        last = self._emit() if self.sampler.keep(self.prev_time + step / 2) else None
        if self.kept < 2:
            raise VideoError(
                f"only {self.kept} frame(s) at {cfg.fps:g} fps ({self.decoded} decoded); at least 2 are "
                "needed for optical flow", path)
        if self.info.duration and end < cfg.min_decoded_fraction * self.info.duration:
            raise VideoError(
                f"truncated: decoded {end:.2f} s of the {self.info.duration:.2f} s the container "
                "declares; re-download the clip", path)
        return last


class _AudioCollector:
    """Decoded audio frames in, one mono float32 track at `rate` out (or why it is missing)."""

    def __init__(self, path: Path, stream, rate: int) -> None:
        self.path, self.rate = path, rate
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self.chunks: list[np.ndarray] = []
        self.error: str | None = None
        self.declared = (float(stream.duration * stream.time_base)
                         if stream.duration is not None and stream.time_base is not None else None)

    def push(self, frame) -> None:
        frame.pts = None  # let the resampler follow sample counts, not gaps
        self.chunks += [f.to_ndarray().reshape(-1) for f in self.resampler.resample(frame)]

    def fail(self, exc: Exception) -> None:
        log.warning("%s: audio stream unreadable (%s); treating the audio as missing", self.path, exc)
        self.error = f"audio stream unreadable: {exc}"

    def track(self) -> AudioTrack:
        if self.error is not None:
            return AudioTrack(None, self.rate, self.error)
        try:
            self.chunks += [f.to_ndarray().reshape(-1) for f in self.resampler.resample(None)]
        except (av.error.FFmpegError, ValueError) as exc:
            self.fail(exc)
            return AudioTrack(None, self.rate, self.error)
        if not self.chunks or sum(len(c) for c in self.chunks) == 0:
            return AudioTrack(None, self.rate, "audio stream has no samples")
        samples = np.concatenate(self.chunks).astype(np.float32, copy=False)
        if self.declared:  # drop the codec's padding after the declared end (AAC pads to 1024 samples)
            samples = samples[: int(round(self.declared * self.rate))]
        return AudioTrack(samples, self.rate)


class ClipReader:
    """One open container: what it declares, its sampled frames and its audio, in one pass.

    Extraction opens each clip once: the video and audio packets are demultiplexed together,
    so the file is read once however many streams are used.

        with ClipReader(path, cfg) as clip:
            for frame in clip.frames(): ...
            track = clip.audio()
    """

    def __init__(self, path: str | Path, cfg: VideoConfig = VideoConfig(), audio: bool = True) -> None:
        self.path, self.cfg, self.want_audio = Path(path), cfg, audio
        self._audio: _AudioCollector | None = None
        self._read = False

    def __enter__(self) -> ClipReader:
        self.container = _open(self.path)
        try:
            self.info = _info(self.container, self.path)
        except BaseException:
            self.container.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.container.close()

    def frames(self) -> Iterator[Frame]:
        """Sampled frames one at a time (memory does not grow with length); the audio packets
        met on the way are decoded too. Raises VideoError, naming the file, for unreadable,
        truncated or too-short clips, possibly after some frames: keep no partial output."""
        container, cfg = self.container, self.cfg
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        video.codec_context.thread_count = cfg.decoder_threads
        sampling = _Sampling(self.path, self.info, video, cfg)
        streams = [video]
        if self.want_audio and container.streams.audio:
            audio = container.streams.audio[0]
            self._audio = _AudioCollector(self.path, audio, cfg.audio_rate)
            streams.append(audio)
        try:
            for packet in container.demux(streams):
                if packet.stream.type == "audio":
                    self._decode_audio(packet)
                    continue
                for frame in packet.decode():
                    out = sampling.push(frame)
                    if out is not None:
                        yield out
        except av.error.FFmpegError as exc:
            raise sampling.failed(exc) from exc
        last = sampling.finish()
        self._read = True
        if last is not None:
            yield last

    def _decode_audio(self, packet) -> None:
        if self._audio.error is not None:
            return
        try:
            for frame in packet.decode():
                self._audio.push(frame)
        except (av.error.FFmpegError, ValueError) as exc:
            self._audio.fail(exc)

    def audio(self) -> AudioTrack:
        """The first audio track as mono float32 at cfg.audio_rate, after `frames()` has run:
        a clip without audio, or with unreadable audio, gives samples None and the reason."""
        rate = self.cfg.audio_rate
        if not self.container.streams.audio:
            return AudioTrack(None, rate, "no audio stream")
        if not self._read:
            raise RuntimeError("ClipReader.audio() needs frames() to have run to the end first")
        return self._audio.track()


def iter_frames(path: str | Path, cfg: VideoConfig = VideoConfig()) -> Iterator[Frame]:
    """Yield the sampled frames of a clip one at a time (memory does not grow with length).

    Raises VideoError, naming the file, for unreadable, truncated or too-short clips; the
    error may come after some frames were yielded, so callers must not keep partial output.
    """
    with ClipReader(path, cfg, audio=False) as clip:
        yield from clip.frames()


def _to_rgb(frame, cfg: VideoConfig) -> np.ndarray:
    return frame.to_ndarray(format="rgb24", width=cfg.width, height=cfg.height)


def read_audio(path: str | Path, rate: int = VideoConfig.audio_rate) -> AudioTrack:
    """The clip's first audio track as mono float32 at `rate` Hz, decoding the audio only.

    A clip without an audio stream, or whose audio cannot be decoded, returns an AudioTrack
    with samples None and the reason: missing audio is data, not an error.
    """
    path = Path(path)
    with _open(path) as container:
        if not container.streams.audio:
            return AudioTrack(None, rate, "no audio stream")
        collector = _AudioCollector(path, container.streams.audio[0], rate)
        try:
            for frame in container.decode(container.streams.audio[0]):
                collector.push(frame)
        except (av.error.FFmpegError, ValueError) as exc:
            collector.fail(exc)
        return collector.track()


def decode_clip(path: str | Path, cfg: VideoConfig = VideoConfig(), audio: bool = True) -> DecodedClip:
    """Every sampled frame of a clip in one array, with its audio track (for short clips)."""
    with ClipReader(path, cfg, audio=audio) as clip:
        frames = list(clip.frames())
        track = clip.audio() if audio else AudioTrack(None, cfg.audio_rate, "not read")
    return DecodedClip(
        frames=np.stack([f.rgb for f in frames]),
        times=np.array([f.time for f in frames]),
        info=clip.info,
        audio=track,
    )
