"""`afgen demo`: synth -> extract -> train -> evaluate on the embedded synthetic dataset.

Defaults (config.DemoConfig) finish in a few minutes on a 2-core CPU: 48 px 2-s clips of 8
classes (two pairs of which look alike and differ only in their sound), a ResNet18 at 48 px,
ImageNet weights only when torchvision already has them cached (otherwise random weights,
said plainly), 3 training seeds and about 300 test clips, so the table's intervals are narrow
enough to decide something. Every stage resumes, so a rerun is quick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from afgen.config import DemoConfig, EvalConfig, ExtractConfig, SynthConfig, TrainConfig, VideoConfig
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract
from afgen.extraction.synth import generate
from afgen.learning.evaluate import EvalResult, evaluate
from afgen.learning.train import train

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    out: Path
    weights: str
    weights_note: str
    evaluation: EvalResult
    train_metrics: dict


def cached_imagenet_weights(name: str) -> Path | None:
    """The torchvision weights file for `name` if it is already in the torch hub cache."""
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    return path if path.is_file() else None


def run_demo(out: str | Path = "afgen-demo", cfg: DemoConfig = DemoConfig(), workers: int = ExtractConfig.workers,
             show_progress: bool = True) -> DemoResult:
    out = Path(out)
    cached = cached_imagenet_weights(cfg.backbone)
    weights = "imagenet" if cached else "none"
    note = (f"ImageNet weights for {cfg.backbone} found in the torch cache ({cached})" if cached else
            f"no ImageNet weights for {cfg.backbone} are cached, so the backbone has RANDOM weights "
            "(--weights none); features are weaker than with ImageNet weights")
    log.info("%s", note)
    listing = generate(out / "clips", SynthConfig(
        classes=cfg.classes, clips_per_class=cfg.clips_per_class, size=cfg.size, seconds=cfg.seconds, seed=cfg.seed,
        missing_audio=cfg.missing_audio, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
        cue=cfg.cue),
        show_progress=show_progress)
    extract(discover(listing), out / "features",
            ExtractConfig(backbone=cfg.backbone, weights=weights, workers=workers),
            VideoConfig(height=cfg.image_size, width=cfg.image_size), show_progress=show_progress)
    run = out / "run"
    tcfg = TrainConfig(epochs=cfg.epochs, patience=cfg.patience, hidden=cfg.hidden, oof_folds=cfg.oof_folds,
                       seed=cfg.seeds[0], seed_workers=len(cfg.seeds))
    metrics = train(out / "features", run, tcfg, resume=run.exists(), show_progress=show_progress,
                    seeds=cfg.seeds).metrics
    evaluation = evaluate(run, out / "features", EvalConfig(seed=cfg.seed))
    return DemoResult(out=out, weights=weights, weights_note=note, evaluation=evaluation, train_metrics=metrics)
