"""A trained run's models, rebuilt from RUN/model.pt (see contracts/runfolder.py), in eval mode."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from afgen.config import TrainConfig, from_dict
from afgen.contracts.runfolder import BUNDLE, load_bundle, seed_runs
from afgen.learning.models import AudioVisualClassifier, FrameGenerator, SoundFeatureGenerator, pooled_dim

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """The models of one trained (single-seed) run, by name (see methods.STAGES), in eval mode."""

    models: dict[str, nn.Module]
    classes: list[str]
    train: TrainConfig
    features: Path
    store_config: dict
    path: Path

    @property
    def generator(self) -> SoundFeatureGenerator:
        return self.models["generator"]

    @property
    def fusion(self) -> AudioVisualClassifier:
        return self.models["fusion"]


def load_run(run: str | Path) -> TrainedRun:
    """The trained models of a run (RUN/model.pt, loaded with weights_only=True), in eval mode.

    For a multi-seed run, the first seed's run."""
    runs = seed_runs(run)
    if len(runs) > 1:
        log.info("%s holds %d seeds; using %s", run, len(runs), runs[0].name)
    bundle = load_bundle(runs[0] / BUNDLE)
    cfg = from_dict(TrainConfig, bundle["train"])
    d = bundle["dims"]
    models: dict[str, nn.Module] = {}
    frames = set(bundle.get("frame_models", ()))  # per-frame generation: its generator and pooled classifier
    for name, state in bundle["models"].items():
        if "classify.weight" in state:
            kind, audio_dim = (FrameGenerator, d["frame_bands"]) if name in frames else (SoundFeatureGenerator,
                                                                                          d["audio_dim"])
            model = kind(d["input_dim"], d["num_classes"], audio_dim, cfg.hidden, cfg.layers, cfg.dropout,
                         cfg.input_dropout)
        else:
            model = AudioVisualClassifier(d["input_dim"], d["num_classes"],
                                          pooled_dim(d["frame_bands"]) if name in frames else d["audio_dim"],
                                          cfg.fusion_hidden, cfg.dropout, missing_token=name in bundle["tokens"])
        model.load_state_dict(state)
        models[name] = model.eval()
    return TrainedRun(models, list(bundle["classes"]), cfg, Path(bundle["features"]),
                      json.loads(bundle["store_config"]), runs[0])
