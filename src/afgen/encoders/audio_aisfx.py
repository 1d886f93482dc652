"""`--audio aisfx`: the 512-d sound-effects embedding of the aisfx package (Ma et al., ISMIR 2021:
a 6.2M-parameter CNN trained across nine commercial sound-effects libraries; code MIT, model
CC BY 4.0), with the checkpoint that ships in the package, so it works offline.

The package's own front end (its librosa path: 44.1 kHz, peak-normalised, 96 HTK mel bands of
2048-sample windows with a 1024-sample hop, log10(10^4 x + 1), its ISMIR min/max scaling) and
its blocking (100 spectrogram frames, ~2.32 s, hop half a block; a short clip is one padded
block) give the clip feature: the mean of the block embeddings. Per video frame: the same
network's convolutional map is computed once over the whole clip and max-pooled over the
~2.32 s window centred on the frame (the embedding is a max over time of that map, so this is
the block embedding on a window sliding with the frames, at the cost of one pass, not six per
second). aisfx pins ancient dependencies, so it is installed without them
(`pip install --no-deps aisfx`); it needs only torch, numpy, librosa and tqdm here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from afgen.config import AudioFeatureConfig
from afgen.encoders.audio import AudioFeatures
from afgen.errors import AfgenError

INSTALL = "pip install --no-deps aisfx"


def _aisfx():
    try:
        import aisfx.inference as inference
        from aisfx.models.cnn2d import EmbeddingNet
        from aisfx.preprocessing import blocking, spectrogram_normalize
    except ImportError as exc:
        raise AfgenError(f"--audio aisfx needs the aisfx package ({exc.name} is missing): {INSTALL}") from None
    return inference, EmbeddingNet, blocking, spectrogram_normalize


def load_checkpoint(path: Path) -> dict:
    """The embedding network's state dict from an aisfx checkpoint ((weights, datasets) as the
    package saves it, or a plain state dict), read with weights_only=True: the numpy globals its
    pickle holds (numpy.core.multiarray.scalar and numpy.dtype, and under numpy 2 the int64
    dtype class they unpickle to) are allow-listed, nothing else."""
    import torch

    try:
        from numpy._core.multiarray import scalar  # numpy 2
    except ImportError:
        from numpy.core.multiarray import scalar
    if not path.is_file():
        raise AfgenError(f"aisfx checkpoint not found; {INSTALL}, or pass --audio-weights PATH", path)
    try:
        with torch.serialization.safe_globals([(scalar, "numpy.core.multiarray.scalar"), np.dtype,
                                               type(np.dtype(np.int64))]):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad or unsafe files
        raise AfgenError(f"not a loadable aisfx checkpoint ({exc})", path) from exc
    state = loaded[0] if isinstance(loaded, tuple) else loaded
    if not isinstance(state, dict):
        raise AfgenError("expected an aisfx checkpoint (weights, datasets) or a state dict", path)
    return {k.removeprefix("embedding_net."): v for k, v in state.items() if not k.startswith("fc.")}


class AISFXEncoder:
    """aisfx embeddings: clip = mean over ~2.32-s blocks (hop 1.16 s), frames = the window
    sliding with the video frames (see the module docstring)."""

    name = "aisfx"
    dim = 512
    emb_hop = 0.5  # of a block, as in the package (and its paper)

    def __init__(self, cfg: AudioFeatureConfig = AudioFeatureConfig(encoder="aisfx")) -> None:
        self.cfg = cfg
        self._model = None
        self._weights_id: str | None = None

    def weights_id(self) -> str:
        self._build()
        return self._weights_id

    def params(self) -> dict:
        inference = _aisfx()[0]
        return {"name": self.name, "dim": self.dim, "weights": self.weights_id(), "sample_rate": inference.SAMPLE_RATE,
                "win": inference.SPEC_BLOCK_LENGTH, "hop": inference.SPEC_HOP_LENGTH, "n_mels": inference.MEL_BINS,
                "block_frames": inference.EMB_BLOCK_LENGTH, "block_hop": self.emb_hop, "spec_norm": "original"}

    def _build(self):
        if self._model is not None:
            return self._model
        from afgen.encoders.weights import file_id, package_id, resolve_weights

        inference, net, _, _ = _aisfx()

        def architecture():
            return net("max", 3, 1, 64)

        def fit(model, path: Path):
            try:
                model.load_state_dict(load_checkpoint(path))
            except RuntimeError as exc:
                raise AfgenError(f"state dict does not fit aisfx's embedding network: {str(exc).splitlines()[0]}",
                                 path) from None
            return model, file_id(path)

        def packaged():
            model, ident = fit(architecture(), Path(inference.get_path_modelWeights()))
            return model, package_id("aisfx", ident)

        model, self._weights_id = resolve_weights(self.cfg.weights, random=architecture, default=packaged, fit=fit)
        self._model = model.eval()
        return self._model

    def spectrogram(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """The package's normalised log-mel spectrogram [frames, 96] (its librosa front end, on samples)."""
        import librosa

        inference, _, _, normalize = _aisfx()
        sr = int(inference.SAMPLE_RATE)
        y = samples.astype(np.float32)
        if rate != sr:
            y = librosa.resample(y, orig_sr=rate, target_sr=sr)
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        y = y / (peak or 1.0)
        spec = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=inference.MEL_BINS, norm=1.0, fmin=inference.F_MIN,
                                              fmax=inference.F_MAX, htk=True, power=2.0,
                                              hop_length=inference.SPEC_HOP_LENGTH,
                                              win_length=inference.SPEC_BLOCK_LENGTH)
        return normalize(np.log10(spec * 10000.0 + 1), spec_norm="original").T.astype(np.float32)

    def encode(self, samples: np.ndarray, rate: int, frame_times: Sequence[float],
               frame_step: float) -> AudioFeatures:
        import torch

        from afgen.encoders.weights import one_torch_thread

        inference, _, blocking, _ = _aisfx()
        model = self._build()
        spec = self.spectrogram(samples, rate)
        block = inference.EMB_BLOCK_LENGTH
        if len(spec) < block:  # a short clip: one zero-padded block, as the package's blocking pads
            spec = np.vstack([spec, np.zeros((block - len(spec), spec.shape[1]), np.float32)])
        blocks = blocking(spec, block_size=block, hop_size=int(round(block * self.emb_hop)), drop_partial_block=True)
        with one_torch_thread(), torch.inference_mode():  # a producer's share of the CPU
            clip = model(torch.from_numpy(blocks.astype(np.float32))).mean(0).numpy()
            columns = self._conv_map(model, torch.from_numpy(spec)[None])  # [512, T']
        frames = self._sliding(columns.numpy(), len(spec), frame_times, frame_step, inference)
        return AudioFeatures(clip=clip.astype(np.float32), frames=frames)

    @staticmethod
    def _conv_map(model, x):
        """EmbeddingNet's forward up to its max over time: the frequency-averaged map [512, T']."""
        x = x.unsqueeze(1)
        for k, block in enumerate((model.conv_block1, model.conv_block2, model.conv_block3, model.conv_block4)):
            x = block(x, pool_size=(2, 2) if k < 3 else (1, 1), pool_type=model.pool_type)
        return x.mean(dim=3)[0]

    @staticmethod
    def _sliding(columns: np.ndarray, spec_frames: int, frame_times: Sequence[float], frame_step: float,
                 inference) -> np.ndarray:
        """Per video frame: the max over the map's columns of the block-long window centred on it."""
        seconds_per_column = spec_frames / columns.shape[1] * inference.SPEC_HOP_LENGTH / inference.SAMPLE_RATE
        half = inference.EMB_BLOCK_LENGTH * inference.SPEC_HOP_LENGTH / inference.SAMPLE_RATE / 2
        out = np.empty((len(frame_times), columns.shape[0]), np.float32)
        for k, t0 in enumerate(frame_times):
            mid = t0 + frame_step / 2
            lo = int(np.clip((mid - half) / seconds_per_column, 0, columns.shape[1] - 1))
            hi = int(np.clip(np.ceil((mid + half) / seconds_per_column), lo + 1, columns.shape[1]))
            out[k] = columns[:, lo:hi].max(axis=1)
        return out
