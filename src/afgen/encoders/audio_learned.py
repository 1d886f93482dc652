"""The learned audio encoders: VGGish (torchvggish) and the Audio Spectrogram Transformer
(transformers). Each runs in a producer with one torch thread, and loads its weights once per
process by the one rule of encoders/weights.py (none / default / PATH)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from afgen.config import AudioFeatureConfig
from afgen.encoders.audio import AudioFeatures, frame_aligned
from afgen.errors import AfgenError


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

        from afgen.encoders.weights import resolve_weights, torchvggish_id

        self._require()
        def pretrained():
            try:
                state = torch.hub.load_state_dict_from_url(VGGISH_WEIGHTS, progress=False, map_location="cpu")
            except Exception as exc:  # noqa: BLE001 - download and cache errors come in many types
                raise AfgenError(
                    f"cannot load VGGish weights ({self.DEFAULT_WEIGHTS}): not in torch's hub cache and the download "
                    f"failed ({type(exc).__name__}). Offline, pass `--audio-weights PATH` (that state dict) or "
                    "`--audio-weights none` (random, for tests).") from exc
            model = _vgg(postprocess=False)
            model.load_state_dict(state)
            return model, torchvggish_id(self.DEFAULT_WEIGHTS)

        model, self._weights_id = resolve_weights(self.cfg.weights, random=lambda: _vgg(postprocess=False),
                                                  default=pretrained, what="VGGish")
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

        from afgen.encoders.weights import one_torch_thread

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
        from afgen.encoders.weights import folder_id, hf_id, load_into, resolve_weights

        def from_pretrained(source: str):
            try:
                return ASTModel.from_pretrained(source)
            except Exception as exc:  # noqa: BLE001 - hub and file errors come in many types
                raise AfgenError(
                    f"cannot load AST weights from {source} ({type(exc).__name__}): not in the Hugging Face cache and "
                    "the download failed, or not a saved model folder. Offline, pass `--audio-weights PATH` (a folder "
                    "from save_pretrained, or a state dict) or `--audio-weights none` (random, for tests).") from exc

        def fit(model, path: Path):
            if path.is_dir():  # a folder written by save_pretrained
                return from_pretrained(str(path)), folder_id(path)
            return model, load_into(model, path, "AST")

        self._extractor = ASTFeatureExtractor()
        model, self._weights_id = resolve_weights(
            self.cfg.weights, random=lambda: ASTModel(ASTConfig()),
            default=lambda: (from_pretrained(self.DEFAULT_WEIGHTS), hf_id(self.DEFAULT_WEIGHTS)), fit=fit)
        self._model = model.eval()
        return self._model

    def encode(self, samples: np.ndarray, rate: int, frame_times: Sequence[float],
               frame_step: float) -> AudioFeatures:
        import torch

        from afgen.encoders.weights import one_torch_thread

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

