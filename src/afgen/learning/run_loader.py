"""A trained run's models, rebuilt from RUN/model.pt (read by contracts/modelfile.py), in eval mode."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from afgen.config import TrainConfig, from_dict
from afgen.contracts.modelfile import ModelFile, read_model_file
from afgen.contracts.runfolder import BUNDLE, seed_runs
from afgen.errors import AfgenError
from afgen.learning.method_registry import rebuild, registry
from afgen.learning.models import pooled_dim

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """The models of one trained (single-seed) run, by stage name, in eval mode."""

    models: dict[str, nn.Module]
    classes: list[str]
    train: TrainConfig
    features: Path
    store_config: dict
    path: Path

    @property
    def generator(self) -> nn.Module:
        """The generator of the paper's method (what `afgen predict` fills missing audio with)."""
        return self._paper_model(registry().paper().fill.generator)

    @property
    def fusion(self) -> nn.Module:
        """The classifier of the paper's method."""
        return self._paper_model(registry().paper().model)

    def _paper_model(self, stage: str) -> nn.Module:
        if stage not in self.models:
            raise AfgenError(f"this run has no model for stage {stage!r}, which the paper's method (what predict and "
                             f"export-model use) needs: it was trained with --methods without it; train a run that has it "
                             f"(`afgen train FEATURES RUN2`, or with --methods {registry().paper().key},...)", self.path)
        return self.models[stage]


def load_run(run: str | Path) -> TrainedRun:
    """The trained models of a run (RUN/model.pt, loaded with weights_only=True), in eval mode,
    each rebuilt from its record (registered class and arguments). For a multi-seed run, the
    first seed's run."""
    runs = seed_runs(run)
    if len(runs) > 1:
        log.info("%s holds %d seeds; using %s", run, len(runs), runs[0].name)
    bundle = read_model_file(runs[0] / BUNDLE)
    cfg = from_dict(TrainConfig, bundle.train)
    records = bundle.records or _inferred_records(bundle, cfg)
    known = registry().models
    unknown = {name: r["model"] for name, r in records.items() if r["model"] not in known}
    if unknown:  # e.g. a plug-in's stage, the plug-in since uninstalled: its rows are simply not scored
        log.warning("%s holds model(s) of classes nothing registers now (%s): install the package that provides them "
                    "to use them; their rows are skipped", runs[0], ", ".join(f"{k}: {v}" for k, v in unknown.items()))
    models: dict[str, nn.Module] = {}
    for name, state in bundle.models.items():
        if name in unknown:
            continue
        model = rebuild(records[name])
        model.load_state_dict(state)
        models[name] = model.eval()
    return TrainedRun(models, bundle.classes, cfg, bundle.features, bundle.store_config, runs[0])


def _inferred_records(bundle: ModelFile, cfg: TrainConfig) -> dict[str, dict]:
    """The records of a format-2 bundle (written before models recorded themselves): a generator
    has a classification head, the per-frame models and the token models are listed by name."""
    d = bundle.dims
    frames = set(bundle.frame_models)
    records = {}
    for name, state in bundle.models.items():
        if "classify.weight" in state:
            args = {"input_dim": d["input_dim"], "num_classes": d["num_classes"], "hidden": cfg.hidden,
                    "layers": cfg.layers, "dropout": cfg.dropout, "input_dropout": cfg.input_dropout}
            records[name] = ({"model": "lstm_frame_generator", "args": {**args, "bands": d["frame_bands"]}}
                             if name in frames else {"model": "lstm_generator", "args": {**args, "audio_dim": d["audio_dim"]}})
        else:
            records[name] = {"model": "av_classifier", "args": {
                "input_dim": d["input_dim"], "num_classes": d["num_classes"],
                "audio_dim": pooled_dim(d["frame_bands"]) if name in frames else d["audio_dim"],
                "hidden": cfg.fusion_hidden, "dropout": cfg.dropout, "missing_token": name in bundle.tokens}}
    return records
