"""Audio feature encoders: what the generator learns to produce from the video.

The default `logmel` encoder (librosa) gives a 128-d clip feature, the mean and standard
deviation over time of 64 log-mel bands (25 ms window, 10 ms hop at 16 kHz), and a sequence
of band energies aligned to the sampled video frames. `vggish` gives the pretrained VGGish
embedding (torchvggish), 128-d per 0.96 s; `ast` the AudioSet-pretrained Audio Spectrogram
Transformer (transformers), 768-d. Other encoders plug in by name through `register`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from afgen.config import AudioFeatureConfig, to_dict
from afgen.errors import AfgenError


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


class VGGishEncoder:
    """VGGish (Hershey et al. 2017): 128-d embeddings of 0.96-s log-mel examples, from the
    torchvggish package, which provides the architecture and the reference preprocessing
    (16 kHz, 25 ms periodic Hann window, 10 ms hop, 64 mel bands 125-7500 Hz, log(mel + 0.01),
    96 x 64 examples). Clip feature: the mean embedding; per video frame: the embedding of
    its example. No PCA/quantisation postprocessing (the features stay continuous)."""

    name = "vggish"
    dim = 128
    example_seconds = 0.96
    DEFAULT_WEIGHTS = "vggish-10086976.pth"

    def __init__(self, cfg: AudioFeatureConfig = AudioFeatureConfig(encoder="vggish")) -> None:
        self.cfg = cfg
        self._model = None
        self._weights_id: str | None = None

    def _require(self):
        try:
            import torchvggish
        except ImportError:
            raise AfgenError('--audio vggish needs torchvggish: pip install "afgen[extractors]"') from None
        return torchvggish

    def weights_id(self) -> str:
        if self._weights_id is None:
            self._build()
        return self._weights_id

    def params(self) -> dict:
        from torchvggish import vggish_params as p

        self._require()
        return {"name": self.name, "dim": self.dim, "weights": self.weights_id(), "sample_rate": p.SAMPLE_RATE,
                "win_seconds": p.STFT_WINDOW_LENGTH_SECONDS, "hop_seconds": p.STFT_HOP_LENGTH_SECONDS,
                "n_mels": p.NUM_MEL_BINS, "fmin": p.MEL_MIN_HZ, "fmax": p.MEL_MAX_HZ, "log_offset": p.LOG_OFFSET,
                "example_seconds": p.EXAMPLE_WINDOW_SECONDS}

    def _build(self):
        import torch
        from torchvggish.torchvggish import VGGISH_WEIGHTS, _vgg

        from afgen.weights import RANDOM_ID, load_into, seeded

        self._require()
        model = seeded(lambda: _vgg(postprocess=False))
        weights = self.cfg.weights
        if weights == "none":
            self._weights_id = RANDOM_ID
        elif weights == "default":
            try:
                state = torch.hub.load_state_dict_from_url(VGGISH_WEIGHTS, progress=False, map_location="cpu")
            except Exception as exc:  # noqa: BLE001 - download and cache errors come in many types
                raise AfgenError(
                    f"cannot load VGGish weights ({self.DEFAULT_WEIGHTS}): not in torch's hub cache and the download "
                    f"failed ({type(exc).__name__}). Offline, pass `--audio-weights PATH` (that state dict) or "
                    "`--audio-weights none` (random, for tests).") from exc
            model.load_state_dict(state)
            self._weights_id = f"torchvggish:{self.DEFAULT_WEIGHTS}"
        else:
            self._weights_id = load_into(model, weights, "VGGish")
        self._model = model.eval()
        return self._model

    def examples(self, samples: np.ndarray, rate: int):
        """The reference log-mel examples [n, 1, 96, 64] (at least one: short clips are padded)."""
        from torchvggish.vggish_input import waveform_to_examples

        # one example is 96 frames: a 25 ms window plus 95 hops of 10 ms = 0.975 s
        need = int(np.ceil(0.975 * rate)) + 2
        if len(samples) < need:
            samples = np.pad(samples, (0, need - len(samples)))
        return waveform_to_examples(samples.astype(np.float64), rate, return_tensor=True).detach()

    def encode(self, samples: np.ndarray, rate: int, frame_times: Sequence[float],
               frame_step: float) -> AudioFeatures:
        import torch

        from afgen.weights import one_torch_thread

        model = self._model or self._build()
        with one_torch_thread(), torch.inference_mode():  # a producer's share of the CPU
            emb = model(self.examples(samples, rate).float()).numpy()
        return AudioFeatures(clip=emb.mean(0).astype(np.float32),
                             frames=frame_aligned(emb, self.example_seconds, frame_times, frame_step))


class ASTEncoder:
    """The Audio Spectrogram Transformer (Gong et al. 2021), AudioSet-pretrained, from the
    transformers package, which provides the architecture and its preprocessing
    (ASTFeatureExtractor: 16 kHz, 128 Kaldi fbank bins, 25 ms / 10 ms, AudioSet mean/std,
    1,024 frames = 10.24 s per window). Clip feature: the pooled 768-d output, averaged over
    10.24-s windows; per video frame: the patch tokens of its 0.1-s time column, averaged over
    frequency."""

    name = "ast"
    dim = 768
    window_seconds = 10.24
    DEFAULT_WEIGHTS = "MIT/ast-finetuned-audioset-10-10-0.4593"

    def __init__(self, cfg: AudioFeatureConfig = AudioFeatureConfig(encoder="ast")) -> None:
        self.cfg = cfg
        self._model = None
        self._extractor = None
        self._weights_id: str | None = None

    def params(self) -> dict:
        self._build()
        e = self._extractor
        return {"name": self.name, "dim": self.dim, "weights": self._weights_id, "sample_rate": e.sampling_rate,
                "n_mels": e.num_mel_bins, "max_frames": e.max_length, "mean": e.mean, "std": e.std}

    def _build(self):
        if self._model is not None:
            return self._model
        try:
            from transformers import ASTConfig, ASTFeatureExtractor, ASTModel
        except ImportError:
            raise AfgenError('--audio ast needs transformers: pip install "afgen[extractors]"') from None
        from afgen.weights import RANDOM_ID, load_into, seeded

        weights = self.cfg.weights
        self._extractor = ASTFeatureExtractor()
        if weights == "none":
            model = seeded(lambda: ASTModel(ASTConfig()))
            self._weights_id = RANDOM_ID
        elif weights == "default" or Path(weights).is_dir():
            source = self.DEFAULT_WEIGHTS if weights == "default" else weights
            try:
                model = ASTModel.from_pretrained(source)
            except Exception as exc:  # noqa: BLE001 - hub and file errors come in many types
                raise AfgenError(
                    f"cannot load AST weights from {source} ({type(exc).__name__}): not in the Hugging Face cache and "
                    "the download failed, or not a saved model folder. Offline, pass `--audio-weights PATH` (a folder "
                    "from save_pretrained, or a state dict) or `--audio-weights none` (random, for tests).") from exc
            self._weights_id = (f"hf:{source}" if weights == "default"
                                else f"folder:{Path(source).name}:{_folder_digest(Path(source))}")
        else:
            model = ASTModel(ASTConfig())
            self._weights_id = load_into(model, weights, "AST")
        self._model = model.eval()
        return self._model

    def encode(self, samples: np.ndarray, rate: int, frame_times: Sequence[float],
               frame_step: float) -> AudioFeatures:
        import torch

        from afgen.weights import one_torch_thread

        model = self._build()
        sr = self._extractor.sampling_rate
        if rate != sr:
            import librosa

            samples = librosa.resample(samples.astype(np.float32), orig_sr=rate, target_sr=sr)
        window = int(self.window_seconds * sr)
        starts = list(range(0, max(1, len(samples)), window))
        pooled, columns = [], []
        with one_torch_thread():  # a producer's share of the CPU; the same bytes in every engine
            for start in starts:
                x = self._extractor(samples[start:start + window].astype(np.float32), sampling_rate=sr,
                                    return_tensors="pt")["input_values"]
                with torch.inference_mode():
                    out = model(input_values=x)
                pooled.append(out.pooler_output[0].numpy())
                cfg = model.config
                f = (cfg.num_mel_bins - cfg.patch_size) // cfg.frequency_stride + 1
                t = (cfg.max_length - cfg.patch_size) // cfg.time_stride + 1
                patches = out.last_hidden_state[0, 2:].reshape(f, t, -1).mean(0).numpy()  # [t, 768]
                columns.append(patches)
        col_seconds = model.config.time_stride * 0.01  # 10 fbank frames of 10 ms per column
        per_window = columns[0].shape[0]
        seq = np.empty((len(frame_times), self.dim), np.float32)
        for k, t0 in enumerate(frame_times):
            mid = t0 + frame_step / 2
            w = min(int(mid // self.window_seconds), len(columns) - 1)
            c = min(int((mid - w * self.window_seconds) / col_seconds), per_window - 1)
            seq[k] = columns[w][c]
        return AudioFeatures(clip=np.mean(pooled, axis=0).astype(np.float32), frames=seq)


def _folder_digest(folder: Path) -> str:
    """A short digest of a saved model folder's weight files (which weights, not where)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


_REGISTRY: dict[str, Callable[[AudioFeatureConfig], AudioEncoder]] = {"logmel": LogMelEncoder, "vggish": VGGishEncoder,
                                                                   "ast": ASTEncoder}


def register(name: str, factory: Callable[[AudioFeatureConfig], AudioEncoder]) -> None:
    """Make an encoder available by name (e.g. another pretrained audio network)."""
    _REGISTRY[name] = factory
    _cached.cache_clear()


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_encoder(name: str = AudioFeatureConfig.encoder, cfg: AudioFeatureConfig | None = None) -> AudioEncoder:
    """The encoder `name` with settings `cfg`, built once per process (a learned one loads its
    weights once, not per clip)."""
    if name not in _REGISTRY:
        raise AfgenError(f"unknown audio encoder {name!r}; available: {', '.join(available())}")
    return _cached(name, cfg or AudioFeatureConfig(encoder=name))


@functools.lru_cache(maxsize=8)
def _cached(name: str, cfg: AudioFeatureConfig) -> AudioEncoder:
    return _REGISTRY[name](cfg)
