"""Audio feature encoders: what the generator learns to produce from the video.

The default `logmel` encoder (librosa) gives a 128-d clip feature, the mean and standard
deviation over time of 64 log-mel bands (25 ms window, 10 ms hop at 16 kHz), and a sequence
of band energies aligned to the sampled video frames. `vggish` gives the pretrained VGGish
embedding (torchvggish), 128-d per 0.96 s; `ast` the AudioSet-pretrained Audio Spectrogram
Transformer (transformers), 768-d (both in audio_learned.py); `aisfx` a 512-d sound-effects
embedding (audio_aisfx.py) and `yamnet` the 1024-d YAMNet embedding (audio_yamnet.py), both
with weights shipped in their packages. Other encoders plug in by name through the AUDIO
registry (encoders/registry.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from afgen.config import AudioFeatureConfig, to_dict
from afgen.encoders.registry import AUDIO


@dataclass(frozen=True)
class AudioFeatures:
    """A clip-level feature [dim] and a per-video-frame sequence [t, bands]."""

    clip: np.ndarray
    frames: np.ndarray


class AudioEncoder(Protocol):
    name: str
    dim: int

    def params(self) -> dict: ...

    def encode(self, samples: np.ndarray, rate: int, frame_times: Sequence[float],
               frame_step: float) -> AudioFeatures: ...


class LogMelEncoder:
    """Mean and std over time of log-mel band energies (librosa)."""

    name = "logmel"

    def __init__(self, cfg: AudioFeatureConfig = AudioFeatureConfig()) -> None:
        self.cfg = cfg
        self.dim = 2 * cfg.n_mels

    def params(self) -> dict:
        return {"name": self.name, "dim": self.dim, **{k: v for k, v in to_dict(self.cfg).items() if k != "weights"}}

    def logmel(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Log-mel energies [n_mels, frames] of mono samples (resampled to cfg.sample_rate)."""
        import librosa

        cfg = self.cfg
        if rate != cfg.sample_rate:
            samples = librosa.resample(samples, orig_sr=rate, target_sr=cfg.sample_rate)
        n_fft = int(round(cfg.win_seconds * cfg.sample_rate))
        hop = int(round(cfg.hop_seconds * cfg.sample_rate))
        if len(samples) < n_fft:
            samples = np.pad(samples, (0, n_fft - len(samples)))
        mel = librosa.feature.melspectrogram(
            y=samples.astype(np.float32), sr=cfg.sample_rate, n_fft=n_fft, hop_length=hop,
            win_length=n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, power=2.0,
            center=True)
        return np.log(np.maximum(mel, cfg.log_floor)).astype(np.float32)

    def encode(self, samples: np.ndarray, rate: int, frame_times: Sequence[float],
               frame_step: float) -> AudioFeatures:
        logmel = self.logmel(samples, rate)
        clip = np.concatenate([logmel.mean(axis=1), logmel.std(axis=1)]).astype(np.float32)
        hop = self.cfg.hop_seconds
        seq = np.empty((len(frame_times), logmel.shape[0]), np.float32)
        for k, t0 in enumerate(frame_times):  # mel frames inside each video frame's step
            lo = min(int(round(t0 / hop)), logmel.shape[1] - 1)
            hi = max(lo + 1, min(int(round((t0 + frame_step) / hop)), logmel.shape[1]))
            seq[k] = logmel[:, lo:hi].mean(axis=1)
        return AudioFeatures(clip=clip, frames=seq)


def frame_aligned(embeddings: np.ndarray, hop_seconds: float, frame_times: Sequence[float],
                  frame_step: float) -> np.ndarray:
    """Per video frame, the embedding of the window that holds the middle of its step [t, D]."""
    idx = [min(int((t0 + frame_step / 2) / hop_seconds), len(embeddings) - 1) for t0 in frame_times]
    return embeddings[idx].astype(np.float32)


def available() -> list[str]:
    """The registered audio encoders (encoders/registry.py: AUDIO)."""
    return AUDIO.names()


def get_encoder(name: str = AudioFeatureConfig.encoder, cfg: AudioFeatureConfig | None = None) -> AudioEncoder:
    """The encoder `name` with settings `cfg`, built once per process (a learned one loads its
    weights once, not per clip)."""
    AUDIO.get(name)  # an unknown name is an error listing the registered ones
    return _cached(name, cfg or AudioFeatureConfig(encoder=name))


@functools.lru_cache(maxsize=8)
def _cached(name: str, cfg: AudioFeatureConfig) -> AudioEncoder:
    return AUDIO.get(name).load()(cfg)
