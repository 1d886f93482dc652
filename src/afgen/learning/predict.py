"""`afgen predict CLIP`: the actions in one clip, with generated audio when its track is missing.

`Scorer` holds what scores a clip (a trained run's models, or the ONNX files `afgen
export-model` wrote) and `extraction_for` what extracts it (the backbone, flow and audio
settings of the store the run was trained on), so batch prediction (predict_batch.py) builds
both once and scores any number of clips.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from afgen.config import AudioFeatureConfig, ExtractConfig, FlowConfig, PredictConfig, VideoConfig, from_dict
from afgen.contracts.packed import v_c
from afgen.contracts.runfolder import require_model
from afgen.contracts.store import CONFIG, atomic_save_npy
from afgen.contracts.storeconfig import StoreConfig
from afgen.encoders.backbones import Backbone, build_backbone
from afgen.encoders.devices import for_device, resolve_device
from afgen.encoders.flows import is_learned
from afgen.encoders.raft import RaftFlow, build_raft
from afgen.encoders.weights import spec_for
from afgen.errors import AfgenError
from afgen.extraction.assemble import ClipFeatures
from afgen.extraction.dataset import Clip
from afgen.extraction.engines.driver import drive
from afgen.extraction.engines.interface import run_with
from afgen.extraction.producer import Settings
from afgen.learning.run_loader import load_run

log = logging.getLogger(__name__)

#: What the classifier was given for a clip's audio: its real track, the generated feature
#: because the clip has no track, or the generated feature because --drop-audio asked for it.
AUDIO_REAL, AUDIO_MISSING, AUDIO_DROPPED = "real", "missing", "dropped"
#: Where a store config came from, when the caller does not say (named in errors).
STORE_CONFIG = "the run's feature store config.json"


@dataclass
class Prediction:
    clip: Path
    top: list[tuple[str, float]]  # audio-visual classifier
    visual_top: list[tuple[str, float]]  # generator's classification branch
    had_audio: bool
    used_generated_audio: bool
    audio_feature: np.ndarray  # the audio feature the classifier used (raw space)
    t: int
    audio: str = AUDIO_REAL  # real | missing | dropped


class Scorer:
    """Classifies extracted clips with a run's models (`run`) or an exported model (`onnx`)."""

    def __init__(self, run: str | Path | None = None, onnx: str | Path | None = None) -> None:
        require_model(run, onnx)
        self.onnx = Path(onnx) if onnx is not None else None
        if self.onnx is not None:
            from afgen.contracts.exportfolder import onnx_session, read_export

            export = read_export(self.onnx)
            if export.format != "onnx":
                raise AfgenError("this folder holds a TorchScript export; export with --format onnx for --onnx", onnx)
            self.store_config, self.classes = export.store_config, export.classes
            self.config_source: str | Path = export.source
            self._generator = onnx_session(export.path("generator"))
            self._classifier = onnx_session(export.path("classifier"))
        else:
            self.trained = load_run(run)
            self.store_config, self.classes = self.trained.store_config, self.trained.classes
            self.config_source = self.trained.features / CONFIG

    def score(self, feats: ClipFeatures, top: int = PredictConfig.top, drop_audio: bool = False,
              clip: Path | None = None) -> Prediction:
        """Ranked classes for one clip's features (stored in the run's store dtype first, so a
        clip scores as it would from the store)."""
        dtype = StoreConfig(self.store_config).dtype
        seq = torch.from_numpy(v_c(feats.rgb.astype(dtype).astype(np.float32),
                                   feats.flow.astype(dtype).astype(np.float32)))[None]
        lengths = torch.tensor([seq.shape[1]])
        had_audio = "audio" in feats.audio
        use_real = had_audio and not drop_audio
        real = torch.from_numpy(feats.audio["audio"])[None] if use_real else None
        if self.onnx is not None:
            vis, generated = self._generator.run(None, {"v_c": seq.numpy(), "lengths": lengths.numpy()})
            vis_logits = torch.from_numpy(vis)
            audio = real if use_real else torch.from_numpy(generated)
            logits = torch.from_numpy(self._classifier.run(None, {"v_c": seq.numpy(), "lengths": lengths.numpy(),
                                                                  "audio": audio.numpy().astype(np.float32)})[0])
        else:
            with torch.no_grad():
                vis_logits, audio_hat = self.trained.generator(seq, lengths)
                audio = real if use_real else self.trained.generator.audio_norm.inverse(audio_hat)
                logits = self.trained.fusion(seq, lengths, audio)
        status = AUDIO_REAL if use_real else AUDIO_DROPPED if had_audio else AUDIO_MISSING
        return Prediction(clip=clip or Path(feats.clip_id), top=self._ranked(logits, top),
                          visual_top=self._ranked(vis_logits, top), had_audio=had_audio,
                          used_generated_audio=not use_real, audio_feature=audio[0].numpy(), t=feats.meta["t"],
                          audio=status)

    def _ranked(self, logits: torch.Tensor, top: int) -> list[tuple[str, float]]:
        values, order = logits.softmax(1)[0].topk(min(top, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), order.tolist())]


def extraction_for(store: dict, weights: str | None, device: str, backbone: Backbone | None = None,
                   config: str | Path = STORE_CONFIG) -> tuple[ExtractConfig, Backbone, Settings, RaftFlow | None]:
    """The extraction settings of the store a run used, and the backbone (and RAFT) built once:
    a clip is scored from exactly the kind of features the run was trained on. Each learned
    component's weights are the ones its recorded identity names (encoders.weights.spec_for);
    `weights` replaces the backbone's; `config` is where `store` was read (named in errors)."""
    store_config = StoreConfig(store)
    s, extract = store_config.settings, store_config.extract
    video = from_dict(VideoConfig, {**s["video"], "decoder_threads": 0})
    flow = from_dict(FlowConfig, s["flow"])
    keep = "put that file back at the path recorded there, or extract a new store and train a run on it"
    audio_weights = spec_for(s["audio"].get("weights"), extract.get("audio_weights_arg"), "settings.audio.weights",
                             config, keep)
    audio_cfg = from_dict(AudioFeatureConfig, {**s["audio"], "encoder": s["audio"]["name"], "weights": audio_weights})
    # the store's runtime and precision as this device runs them (a CPU runtime runs as torch on a
    # GPU; bf16 as fp32 where it is not native), in this device's batch, not the store's
    dev = resolve_device(device)
    runtime, precision, notice = for_device(s.get("runtime", "torch"), s["precision"], dev)
    if notice:
        log.info("%s", notice)
    backbone_weights = weights or spec_for(s["weights"], extract.get("weights_arg"), "settings.weights", config,
                                           "pass the same file with --weights PATH")
    cfg = ExtractConfig(backbone=s["backbone"], weights=backbone_weights, precision=precision, runtime=runtime,
                        device=device)
    cfg = replace(cfg, batch_size=cfg.batch_for(dev))
    backbone = backbone or build_backbone(cfg.backbone, cfg.weights, device, cfg.precision, cfg.batch_size, cfg.runtime)
    raft = None
    if is_learned(flow):
        flow_weights = spec_for(s["flow"].get("raft", {}).get("weights"), extract.get("flow_weights_arg"),
                                "settings.flow.raft.weights", config, keep)
        cfg = replace(cfg, flow_weights=flow_weights)  # Ray's actors build their own RAFT from it
        raft = build_raft(flow, backbone.device, flow_weights, backbone.batch_size)
    return cfg, backbone, Settings(video, flow, audio_cfg, backbone.batch_size), raft


def predict(clip: str | Path, run: str | Path | None = None, top: int = PredictConfig.top, weights: str | None = None,
            device: str = ExtractConfig.device, save_audio_feature: str | Path | None = None,
            onnx: str | Path | None = None, drop_audio: bool = False, engine: str = ExtractConfig.engine,
            workers: int | None = None) -> Prediction:
    """Decode and extract one clip with the run's extraction settings, then classify it with
    the run's models, or with the files `afgen export-model` wrote (`onnx`: their folder).
    `drop_audio` scores it as if its track were missing. The clip goes through the engine
    `engine` and engines/driver.py's loop, as batch prediction's clips do; `workers`: producer
    processes, or Ray's producer tasks at a time (one clip uses one; None: the local engine
    decodes it in this process, Ray as many tasks as the CPUs its actors leave)."""
    clip = Path(clip)
    scorer = Scorer(run, onnx)
    if not clip.is_file():
        raise AfgenError("no such clip", clip)
    cfg = ExtractConfig(device=device, engine=engine, workers=0 if workers is None else workers, ray_producers=workers)
    if cfg.workers > 1:
        log.info("--workers %d: one clip is decoded by one producer", cfg.workers)
    one = Clip("clip", clip, None, None, clip.name)
    events = run_with([one], cfg, *extraction_for(scorer.store_config, weights, device,
                                                       config=scorer.config_source))
    got: list = []
    drive(events, [one], lambda _, event: got.append(event), label="predict", show_progress=False)
    if not got or got[0][0] != "done":
        raise AfgenError(got[0][3]) if got else AfgenError("the engine returned nothing for the clip", clip)
    prediction = scorer.score(got[0][2], top, drop_audio, clip)
    if save_audio_feature is not None:
        atomic_save_npy(Path(save_audio_feature), prediction.audio_feature)
    return prediction
