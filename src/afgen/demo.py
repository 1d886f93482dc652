"""`afgen demo`: synth -> extract -> train -> evaluate on the embedded synthetic dataset.

Defaults (config.DemoConfig) finish in a few minutes on a 2-core CPU: 48 px 1.5-s clips of 8
classes (two pairs of which look alike and differ only in their sound), EfficientNet-Lite0
with real ImageNet weights that ship in an installed package (no download, no cache needed) at
112 px, 3 training seeds and about 300 test clips, so the table's intervals are narrow enough
to decide something. Every stage resumes, so a rerun is quick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from afgen.config import DemoConfig, EvalConfig, ExtractConfig, SynthConfig, TrainConfig, VideoConfig
from afgen.encoders.backbones import build_backbone
from afgen.encoders.weights import RANDOM_ID
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


def weights_note(cfg: DemoConfig) -> str:
    """Which weights the demo's backbone has, said plainly (built once here: a missing weights
    package fails now, naming the pip command, not after the clips are made)."""
    backbone = build_backbone(cfg.backbone, cfg.weights, "cpu", "fp32", 1, runtime="torch")
    kind = "RANDOM weights" if backbone.weights_id == RANDOM_ID else "pretrained ImageNet weights"
    return f"{cfg.backbone} with {kind} ({backbone.weights_id}), frames at {cfg.image_size} px"


def run_demo(out: str | Path = "afgen-demo", cfg: DemoConfig = DemoConfig(), workers: int = ExtractConfig.workers,
             show_progress: bool = True) -> DemoResult:
    out = Path(out)
    note = weights_note(cfg)
    log.info("%s", note)
    listing = generate(out / "clips", SynthConfig(
        classes=cfg.classes, clips_per_class=cfg.clips_per_class, size=cfg.size, seconds=cfg.seconds, seed=cfg.seed,
        missing_audio=cfg.missing_audio, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
        cue=cfg.cue),
        show_progress=show_progress)
    extract(discover(listing), out / "features",
            ExtractConfig(backbone=cfg.backbone, weights=cfg.weights, workers=workers),
            VideoConfig(height=cfg.image_size, width=cfg.image_size), show_progress=show_progress)
    run = out / "run"
    tcfg = TrainConfig(epochs=cfg.epochs, patience=cfg.patience, hidden=cfg.hidden, oof_folds=cfg.oof_folds,
                       seed=cfg.seeds[0], seed_workers=len(cfg.seeds))
    metrics = train(out / "features", run, tcfg, resume=run.exists(), show_progress=show_progress,
                    seeds=cfg.seeds).metrics
    evaluation = evaluate(run, out / "features", EvalConfig(seed=cfg.seed))
    return DemoResult(out=out, weights=cfg.weights, weights_note=note, evaluation=evaluation, train_metrics=metrics)
