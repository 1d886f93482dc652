"""What a stage's `train(ctx)` is given: the store, the splits and settings, the outputs of the
stages it needs, and afgen's shared fit (Lightning: early stopping, checkpoints, resume, seeds,
DDP). One StageContext per stage of one seed's run; the stages of a run share its caches.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from afgen.config import TrainConfig
from afgen.contracts.packed import PackedFeatures
from afgen.contracts.runfolder import OOF_DIR
from afgen.contracts.splits import stratified_folds
from afgen.contracts.store import atomic_write_bytes
from afgen.errors import AfgenError
from afgen.learning.batches import ClipSet, FrameAudio, collate
from afgen.learning.fit import class_weights, fit_stage, is_rank_zero, loader
from afgen.learning.models.standardize import Standardizer

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """What a stage's training returns: its model (None for a stage that keeps no model), the
    validation metrics of the weights kept, and its checkpoints by role ("best", ...)."""

    model: nn.Module | None
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoints: dict[str, Path] = field(default_factory=dict)


@dataclass
class RunShared:
    """Shared by every stage of one seed's run: finished stages and computed caches."""

    run: Path
    outputs: dict[str, Trained] = field(default_factory=dict)
    norms: dict = field(default_factory=dict)
    generated: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)


@dataclass
class StageContext:
    """One stage's view of the run (see Stage.train)."""

    name: str
    packed: PackedFeatures
    cfg: TrainConfig
    train_idx: list[int]
    val_idx: list[int]
    label_index: dict[str, int]
    resume: bool
    show_progress: bool
    needs: tuple[str, ...]
    shared: RunShared
    dir: Path = field(default=None)  # RUN/<name>

    def __post_init__(self) -> None:
        if self.dir is None:
            self.dir = self.shared.run / self.name

    # -- the data -----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.label_index)

    @property
    def visual_dim(self) -> int:
        """Width of v_C (concat(v_R[1:], v_F)), what every model reads per step."""
        return self.packed.visual_dim

    @property
    def audio_dim(self) -> int:
        """Width of the audio feature this view gives (clip feature, per-frame bands or pooled)."""
        return self.packed.audio_dim

    @property
    def per_frame(self) -> bool:
        """True when the audio is the per-frame sequence (frames(pooled=False))."""
        return getattr(self.packed, "sequence", False)

    def labels(self, indices: list[int]) -> list[int]:
        return [self.label_index[self.packed.labels[i]] for i in indices]

    def class_weights(self) -> torch.Tensor | None:
        """Per-class loss weights of the training clips (None unless class_balance is weighted_loss)."""
        return class_weights(self.labels(self.train_idx), self.num_classes, self.cfg.class_balance)

    def frames(self, pooled: bool) -> StageContext:
        """This context seen through the store's per-frame audio: the sequence aligned with v_C
        (pooled=False, for a per-frame generator) or its mean and max over time (for a classifier)."""
        return replace(self, packed=FrameAudio(self.packed, pooled))

    def clips(self, indices: list[int], generated: dict[int, np.ndarray] | None = None) -> ClipSet:
        """A dataset of these clips: (v_C, label, real audio, has audio, generated audio)."""
        return ClipSet(self.packed, indices, self.label_index, generated)

    def train_loader(self, generated: dict[int, np.ndarray] | None = None) -> DataLoader:
        return loader(self.clips(self.train_idx, generated), self.cfg, True, self.labels(self.train_idx))

    def val_loader(self, generated: dict[int, np.ndarray] | None = None) -> DataLoader:
        return loader(self.clips(self.val_idx, generated), self.cfg, False, [])

    # -- building and fitting -------------------------------------------------------------
    def seed(self) -> None:
        """Seed every generator (torch, numpy, Python, loader workers) with the run's seed: a
        stage that seeds before it builds its model trains the same whatever ran before it."""
        L.seed_everything(self.cfg.seed, workers=True, verbose=False)

    def standardized(self, model: nn.Module) -> nn.Module:
        """Load the training clips' statistics into `model.visual_norm` and `model.audio_norm`
        (Standardizer): computed once per set of clips and view, shared by the run's stages."""
        key = (tuple(self.train_idx), type(self.packed).__name__, getattr(self.packed, "pooled", None))
        if key not in self.shared.norms:
            visual = Standardizer(self.packed.visual_dim).fit(
                torch.from_numpy(np.concatenate([self.packed.v_c(i) for i in self.train_idx])))
            rows = [a for i in self.train_idx if (a := self.packed.audio(i)) is not None]
            audio = Standardizer(self.packed.audio_dim).fit(  # per-frame audio: statistics over every frame
                torch.from_numpy(np.concatenate(rows) if rows and rows[0].ndim == 2 else np.stack(rows)) if rows
                else torch.zeros(1, self.packed.audio_dim))
            self.shared.norms[key] = (visual.state_dict(), audio.state_dict())
        visual_state, audio_state = self.shared.norms[key]
        model.visual_norm.load_state_dict(visual_state)
        model.audio_norm.load_state_dict(audio_state)
        return model

    def fit(self, module: L.LightningModule, train: DataLoader | None = None, val: DataLoader | None = None
            ) -> Trained:
        """Fit `module` (its `.model` is what the stage keeps) with afgen's shared fit, in RUN/<name>/:
        checkpoints selected on `module.monitor`, early stopping, resume, curves."""
        metrics, paths = fit_stage(module, self.dir, self.cfg, train if train is not None else self.train_loader(),
                                   val if val is not None else self.val_loader(), self.resume, self.show_progress)
        return Trained(module.model.eval(), metrics, paths)

    # -- other stages ---------------------------------------------------------------------
    def _declared(self, stage: str) -> None:
        if stage not in self.needs:
            raise AfgenError(f"stage {self.name!r} uses stage {stage!r} without declaring it: add it to its "
                             f"Stage(needs=...)")

    def output(self, stage: str) -> Trained:
        """The finished output of a stage this one needs."""
        self._declared(stage)
        return self.shared.outputs[stage]

    def model(self, stage: str) -> nn.Module:
        """The trained model of a stage this one needs (eval mode)."""
        return self.output(stage).model

    def generated(self, stage: str, out_of_fold: bool = True) -> dict[int, np.ndarray]:
        """Generated audio (raw space, as a classifier reads it) for the training and validation
        clips from generator stage `stage`. out_of_fold: each training clip's from a generator
        trained without it (k folds, TrainConfig.oof_folds, cached in RUN/oof/<stage>/), so a
        classifier trains on generated audio as good as testing will give, not memorised."""
        self._declared(stage)
        key = (stage, out_of_fold, type(self.packed).__name__, tuple(self.train_idx))
        if key not in self.shared.generated:
            model = self.model(stage)
            if out_of_fold:
                made = {**self._out_of_fold(stage), **generated_audio(model, self.packed, self.val_idx)}
            else:
                made = generated_audio(model, self.packed, self.train_idx + self.val_idx)
            self.shared.generated[key] = made
        return self.shared.generated[key]

    def _out_of_fold(self, stage: str) -> dict[int, np.ndarray]:
        train_idx = self.train_idx
        if self.cfg.oof_folds < 2:
            log.warning("oof_folds < 2: classifiers train on the %s stage's output for its own training clips, "
                        "which is better than what it generates for unseen clips", stage)
            return generated_audio(self.model(stage), self.packed, train_idx)
        folder = self.shared.run / OOF_DIR / stage
        cache = folder / "generated.npz"
        ids = [self.packed.ids[i] for i in train_idx]
        if self.resume and cache.is_file():
            with np.load(cache) as saved:
                if list(saved["ids"]) == ids:
                    return {i: row for i, row in zip(train_idx, saved["audio"])}
        spec = self.shared.stages[stage]
        if spec.needs:  # its folds would reuse the full run's dependencies, which saw every clip
            raise AfgenError(f"out-of-fold audio from stage {stage!r} would not be out of fold: it needs "
                             f"{', '.join(spec.needs)}, trained on every clip; use out_of_fold=False, or a "
                             "generator that trains from the data alone")
        out: dict[int, np.ndarray] = {}
        for j, held in enumerate(stratified_folds(train_idx, [self.packed.labels[i] for i in train_idx], self.cfg.oof_folds,
                                       self.cfg.seed)):
            rest = sorted(set(train_idx) - set(held))
            fold = replace(self, name=f"{stage}/fold-{j}", train_idx=rest, needs=spec.needs, dir=folder / f"fold-{j}")
            out.update(generated_audio(spec.train(fold).model, self.packed, held))
        if is_rank_zero():
            buffer = io.BytesIO()
            np.savez(buffer, ids=np.array(ids), audio=np.stack([out[i] for i in train_idx]))
            atomic_write_bytes(cache, buffer.getvalue())
        return out


def generated_audio(model: nn.Module, packed: PackedFeatures, indices: list[int],
                    batch_size: int = 64) -> dict[int, np.ndarray]:
    """A generator's audio feature (raw space; `model.generate`) for the given clips."""
    model.eval()
    out = {}
    label_index = {lab: 0 for lab in set(packed.labels)}
    k = 0
    for v_c, lengths, *_ in DataLoader(ClipSet(packed, indices, label_index), batch_size=batch_size, collate_fn=collate):
        for row in model.generate(v_c, lengths).numpy():
            out[indices[k]] = row
            k += 1
    return out
