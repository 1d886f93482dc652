"""`afgen predict`: the actions in one clip, with generated audio when its track is missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from afgen.config import AudioFeatureConfig, ExtractConfig, FlowConfig, PredictConfig, VideoConfig, from_dict
from afgen.contracts.packed import v_c
from afgen.contracts.store import atomic_save_npy
from afgen.encoders.backbones import build_backbone
from afgen.encoders.flows import is_learned
from afgen.encoders.raft import build_raft
from afgen.errors import AfgenError
from afgen.extraction.assemble import features_in_process
from afgen.extraction.producer import Settings
from afgen.learning.trained import load_run


@dataclass
class Prediction:
    clip: Path
    top: list[tuple[str, float]]  # audio-visual classifier
    visual_top: list[tuple[str, float]]  # generator's classification branch
    had_audio: bool
    used_generated_audio: bool
    audio_feature: np.ndarray  # the audio feature the classifier used (raw space)
    t: int


def weights_for(store_settings: dict, store_extract: dict, override: str | None) -> str:
    """The --weights value that rebuilds the backbone a store was extracted with."""
    if override:
        return override
    ident = store_settings["weights"]
    if ident.startswith("random:"):
        return "none"
    if ident.startswith("torchvision:"):
        return "imagenet"
    path = store_extract.get("weights_arg")
    if path and Path(path).is_file():
        return path
    raise AfgenError(f"the run's features used local weights ({ident}); pass the same file with --weights PATH")


def predict(clip: str | Path, run: str | Path | None = None, top: int = PredictConfig.top, weights: str | None = None,
            device: str = ExtractConfig.device, save_audio_feature: str | Path | None = None,
            onnx: str | Path | None = None) -> Prediction:
    """Decode and extract one clip with the run's extraction settings, then classify it with
    the run's models, or with the files `afgen export-model` wrote (`onnx`: their folder)."""
    clip = Path(clip)
    if (run is None) == (onnx is None):
        raise AfgenError("give a run (--run RUN) or an exported model folder (--onnx DIR), not both")
    if onnx is not None:
        from afgen.contracts.store import read_json
        from afgen.learning.model_export import META, onnx_session

        meta = read_json(Path(onnx) / META, "rerun `afgen export-model RUN OUT`")
        if meta.get("format") != "onnx":
            raise AfgenError("this folder holds a TorchScript export; export with --format onnx for --onnx", onnx)
        store, classes = meta["store_config"], meta["classes"]
    else:
        trained = load_run(run)
        store, classes = trained.store_config, trained.classes
    feats = _features(clip, store, weights, device)
    dtype = store["settings"].get("dtype", "float32")
    seq = torch.from_numpy(v_c(feats.rgb.astype(dtype).astype(np.float32), feats.flow.astype(dtype).astype(np.float32)))[None]
    lengths = torch.tensor([seq.shape[1]])
    had_audio = "audio" in feats.audio
    real = torch.from_numpy(feats.audio["audio"])[None] if had_audio else None
    if onnx is not None:
        generator = onnx_session(Path(onnx) / meta["files"]["generator"])
        classifier = onnx_session(Path(onnx) / meta["files"]["classifier"])
        vis, generated = generator.run(None, {"v_c": seq.numpy(), "lengths": lengths.numpy()})
        vis_logits = torch.from_numpy(vis)
        audio = real if had_audio else torch.from_numpy(generated)
        logits = torch.from_numpy(classifier.run(None, {"v_c": seq.numpy(), "lengths": lengths.numpy(),
                                                        "audio": audio.numpy().astype(np.float32)})[0])
    else:
        with torch.no_grad():
            vis_logits, audio_hat = trained.generator(seq, lengths)
            audio = real if had_audio else trained.generator.audio_norm.inverse(audio_hat)
            logits = trained.fusion(seq, lengths, audio)
    if save_audio_feature is not None:
        atomic_save_npy(Path(save_audio_feature), audio[0].numpy())

    def ranked(lg: torch.Tensor) -> list[tuple[str, float]]:
        probs = lg.softmax(1)[0]
        values, order = probs.topk(min(top, len(classes)))
        return [(classes[i], float(v)) for v, i in zip(values.tolist(), order.tolist())]

    return Prediction(clip=clip, top=ranked(logits), visual_top=ranked(vis_logits), had_audio=had_audio,
                      used_generated_audio=not had_audio, audio_feature=audio[0].numpy(), t=feats.meta["t"])


def _features(clip: Path, store: dict, weights: str | None, device: str):
    """One clip's v_R, v_F and audio, extracted with the settings of the store a run used."""
    s = store["settings"]
    video = from_dict(VideoConfig, {**s["video"], "decoder_threads": 0})
    flow = from_dict(FlowConfig, s["flow"])
    audio_ident = str(s["audio"].get("weights", ""))
    audio_weights = "default"  # logmel has none; a learned encoder's weights as at extraction
    if audio_ident.startswith("random:"):
        audio_weights = "none"
    elif audio_ident.startswith(("file:", "folder:")):
        audio_weights = store.get("extract", {}).get("audio_weights_arg") or "default"
    audio_cfg = from_dict(AudioFeatureConfig, {**s["audio"], "encoder": s["audio"]["name"], "weights": audio_weights})
    backbone = build_backbone(s["backbone"], weights_for(s, store.get("extract", {}), weights), device,
                              s["precision"], store.get("extract", {}).get("batch_size") or ExtractConfig.cpu_batch_size,
                              s.get("runtime", "torch"))
    raft = None
    if is_learned(flow):
        ident = s["flow"].get("raft", {}).get("weights", "")
        flow_weights = ("none" if ident.startswith("random:") else "default" if ident.startswith("torchvision:")
                        else store.get("extract", {}).get("flow_weights_arg") or "default")
        raft = build_raft(flow, backbone.device, flow_weights, backbone.batch_size)
    return features_in_process("clip", clip, backbone, Settings(video, flow, audio_cfg, backbone.batch_size), raft)
