"""`afgen train`: the generators, then the audio-visual classifiers, with Lightning.

What is trained is the STAGES registry (methods.py), each in RUN/<stage>/ with checkpoints,
CSV and TensorBoard logs and a learning-curve PNG:
  generator      LSTM over v_C, loss = CE + λ·MSE on clips with audio; the checkpoint kept is
                 the one with the lowest validation objective (CE + λ·MSE), and early
                 stopping watches the same; the best-accuracy checkpoint is kept beside it
  generator_l0   the same with λ = 0 (the multi-task ablation)
  oof/fold-k     k generators on k-1 folds of the training clips: their outputs on the held-out
                 fold are the "generated audio" the classifiers train with (out-of-fold, so
                 training sees generated audio as good as testing will, not memorised)
  fusion*        audio-visual classifiers (real audio; modality dropout with zeros, a learned
                 token or generated audio; the visual-only controls with the AV head, plain and
                 distilled from `fusion`), chosen on validation accuracy, ties broken by
                 validation loss
  generator_av   the generator fine-tuned through the frozen `fusion` classifier
RUN/model.pt bundles the chosen weights of all of them (loaded with weights_only=True) and
RUN/provenance.json records the settings, the store's config, versions and the git commit.
With several seeds, RUN/seed-<s>/ holds one such run per seed and RUN/seeds.json lists them.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from afgen.config import TrainConfig, to_dict
from afgen.contracts.packed import PackedFeatures
from afgen.contracts.runfolder import BUNDLE, BUNDLE_FORMAT, METRICS, OOF_DIR, PROVENANCE, SEEDS_FILE, load_checkpoint
from afgen.contracts.store import FeatureStore, atomic_write_bytes, atomic_write_json, read_json
from afgen.errors import AfgenError, repair_hint
from afgen.learning.batches import ClipSet, FrameAudio, collate
from afgen.learning.fit import (
    FrameGeneratorModule,
    FusionModule,
    GeneratorModule,
    ThroughModule,
    class_weights,
    fit_stage,
    is_rank_zero,
    loader,
)
from afgen.learning.methods import GENERATOR_ACC, STAGES
from afgen.learning.models import AudioVisualClassifier, FrameGenerator, SoundFeatureGenerator
from afgen.learning.models.standardize import Standardizer
from afgen.learning.splits import class_order, kfold, resolve_splits
from afgen.lifecycle import process_pool
from afgen.provenance import git_commit, package_versions
from afgen.verify import open_packed

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run: Path
    metrics: dict[str, dict[str, float]]
    seconds: float
    per_seed: dict[int, dict] | None = None


def generated_audio(model: SoundFeatureGenerator, packed: PackedFeatures, indices: list[int],
                    batch_size: int = 64) -> dict[int, np.ndarray]:
    """The generator's audio feature (raw space) for the given clips."""
    model.eval()
    out = {}
    label_index = {lab: 0 for lab in set(packed.labels)}
    dl = DataLoader(ClipSet(packed, indices, label_index), batch_size=batch_size, collate_fn=collate)
    k = 0
    for v_c, lengths, *_ in dl:
        for row in model.generate(v_c, lengths).numpy():
            out[indices[k]] = row
            k += 1
    return out


@dataclass
class _Context:
    """What every stage of one seed's run shares."""

    packed: PackedFeatures
    cfg: TrainConfig
    run: Path
    splits: dict[str, list[int]]
    label_index: dict[str, int]
    resume: bool
    show_progress: bool
    _norms: dict = field(default_factory=dict)

    def labels(self, indices: list[int]) -> list[int]:
        return [self.label_index[self.packed.labels[i]] for i in indices]

    def weights(self, indices: list[int]) -> torch.Tensor | None:
        return class_weights(self.labels(indices), len(self.label_index), self.cfg.class_balance)

    def fitted(self, model: nn.Module, indices: list[int]) -> nn.Module:
        """Standardisation statistics from these (training) clips only, computed once per set
        of clips (every stage of a run reuses them instead of re-reading the features)."""
        key = tuple(indices)
        if key not in self._norms:
            visual = Standardizer(self.packed.visual_dim).fit(
                torch.from_numpy(np.concatenate([self.packed.v_c(i) for i in indices])))
            rows = [a for i in indices if (a := self.packed.audio(i)) is not None]
            audio = Standardizer(self.packed.audio_dim).fit(  # per-frame audio: statistics over every frame
                torch.from_numpy(np.concatenate(rows) if rows and rows[0].ndim == 2 else np.stack(rows)) if rows
                else torch.zeros(1, self.packed.audio_dim))
            self._norms[key] = (visual.state_dict(), audio.state_dict())
        visual_state, audio_state = self._norms[key]
        model.visual_norm.load_state_dict(visual_state)
        model.audio_norm.load_state_dict(audio_state)
        return model

    def frames(self, pooled: bool) -> _Context:
        """This context seen through the store's per-frame audio (batches.FrameAudio)."""
        return replace(self, packed=FrameAudio(self.packed, pooled), _norms={})

    @property
    def per_frame(self) -> bool:
        return getattr(self.packed, "sequence", False)

    def new_generator(self, train_idx: list[int]) -> SoundFeatureGenerator:
        c = self.cfg
        kind = FrameGenerator if self.per_frame else SoundFeatureGenerator
        return self.fitted(kind(self.packed.visual_dim, len(self.label_index), self.packed.audio_dim,
                                c.hidden, c.layers, c.dropout, c.input_dropout), train_idx)

    def fit_generator(self, name: str, train_idx: list[int], lambda_reg: float):
        L.seed_everything(self.cfg.seed, workers=True, verbose=False)
        model = self.new_generator(train_idx)
        train_dl = loader(ClipSet(self.packed, train_idx, self.label_index), self.cfg, True, self.labels(train_idx))
        val_dl = loader(ClipSet(self.packed, self.splits["val"], self.label_index), self.cfg, False, [])
        module = (FrameGeneratorModule if self.per_frame else GeneratorModule)(model, self.cfg, self.weights(train_idx),
                                                                               lambda_reg)
        metrics, paths = fit_stage(module, self.run / name, self.cfg, train_dl, val_dl, self.resume, self.show_progress)
        return model, metrics, paths


def _out_of_fold(ctx: _Context, generator: SoundFeatureGenerator) -> dict[int, np.ndarray]:
    """Generated audio for every training clip from a generator that never saw it (k-fold),
    cached in RUN/oof/generated.npz; with oof_folds < 2, the main generator's own output."""
    train_idx = ctx.splits["train"]
    if ctx.cfg.oof_folds < 2:
        log.warning("oof_folds < 2: classifiers train on the main generator's output for its own training clips, "
                    "which is better than what it generates for unseen clips")
        return generated_audio(generator, ctx.packed, train_idx)
    cache = ctx.run / OOF_DIR / "generated.npz"
    ids = [ctx.packed.ids[i] for i in train_idx]
    if ctx.resume and cache.is_file():
        saved = np.load(cache)
        if list(saved["ids"]) == ids:
            return {i: row for i, row in zip(train_idx, saved["audio"])}
    out: dict[int, np.ndarray] = {}
    folds = kfold(train_idx, [ctx.packed.labels[i] for i in train_idx], ctx.cfg.oof_folds, ctx.cfg.seed)
    lam = ctx.cfg.lambda_reg
    for j, held in enumerate(folds):
        rest = sorted(set(train_idx) - set(held))
        model, _, _ = ctx.fit_generator(f"{OOF_DIR}/fold-{j}", rest, lam)
        out.update(generated_audio(model, ctx.packed, held))
    if is_rank_zero():
        buffer = io.BytesIO()
        np.savez(buffer, ids=np.array(ids), audio=np.stack([out[i] for i in train_idx]))
        atomic_write_bytes(cache, buffer.getvalue())
    return out


def train(features: str | Path, run: str | Path, cfg: TrainConfig = TrainConfig(), resume: bool = False,
          show_progress: bool = True, seeds: Sequence[int] | None = None) -> TrainResult:
    """Train every stage; write RUN/ as described above. With `seeds`, one independent run per
    seed in RUN/seed-<s>/ (same store, same splits), and `metrics` is their mean."""
    run = Path(run)
    FeatureStore(features).require()  # before RUN is created or anything is built
    if not seeds:
        return _train_one(features, run, cfg, resume, show_progress=show_progress)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if (run / BUNDLE).exists():
        raise AfgenError("this run folder holds a single-seed run; use another RUN for --seeds", run)
    if (run / SEEDS_FILE).exists() and not resume:
        raise AfgenError("this run folder already holds a trained multi-seed run; use another RUN or --resume", run)
    start = time.perf_counter()
    run.mkdir(parents=True, exist_ok=True)
    per_seed: dict[int, dict] = {}
    todo = []
    for seed in seeds:
        sub = run / f"seed-{seed}"
        if resume and all((sub / name).is_file() for name in (BUNDLE, METRICS, PROVENANCE)):
            log.info("seed %d is already trained in %s; skipping it", seed, sub)
            per_seed[seed] = read_json(sub / METRICS, repair_hint(run, "this command again"))
        else:
            todo.append(seed)
    workers = min(cfg.seed_workers, len(todo))
    if workers > 1 and cfg.devices not in ("auto", "1"):
        raise AfgenError("--seed-workers > 1 cannot be combined with --devices > 1; use one or the other")
    open_packed(features)  # checked and packed once, before any seed's process reads it
    if workers > 1:
        import os

        threads = max(1, (os.cpu_count() or 1) // workers)
        log.info("training seeds %s in %d parallel processes (%d torch thread(s) each)", todo, workers, threads)
        with process_pool(workers) as pool:
            futures = {seed: pool.submit(_train_seed_process, features, run / f"seed-{seed}", replace(cfg, seed=seed),
                                         resume, threads) for seed in todo}
            per_seed.update({seed: f.result() for seed, f in futures.items()})
    else:
        for seed in todo:
            log.info("training seed %d of %s", seed, seeds)
            per_seed[seed] = _train_one(features, run / f"seed-{seed}", replace(cfg, seed=seed), resume, checked=True,
                                        show_progress=show_progress).metrics
    per_seed = {seed: per_seed[seed] for seed in seeds}
    if not is_rank_zero():
        return TrainResult(run=run, metrics={}, seconds=time.perf_counter() - start, per_seed=per_seed)
    atomic_write_json(run / SEEDS_FILE, {"seeds": seeds, "runs": [f"seed-{s}" for s in seeds]})
    mean = {stage: {k: float(np.mean([per_seed[s][stage][k] for s in seeds if k in per_seed[s].get(stage, {})]))
                    for k in per_seed[seeds[0]][stage]} for stage in per_seed[seeds[0]]}
    atomic_write_json(run / METRICS, {"mean": mean, "per_seed": per_seed})
    return TrainResult(run=run, metrics=mean, seconds=time.perf_counter() - start, per_seed=per_seed)


def _train_seed_process(features: str | Path, run: Path, cfg: TrainConfig, resume: bool, threads: int) -> dict:
    # (train() checked and packed the store before starting the seeds)
    """One seed's run in a worker process (spawned): no progress bars; fit_stage quiets Lightning's
    chatter and the libraries' deprecations there as here (learning/quiet.py)."""
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)
    return _train_one(features, run, cfg, resume, checked=True, show_progress=False).metrics


def _train_one(features: str | Path, run: Path, cfg: TrainConfig, resume: bool, checked: bool = False,
               show_progress: bool = True) -> TrainResult:
    start = time.perf_counter()
    if (run / BUNDLE).exists() and not resume:
        raise AfgenError("this run folder already holds a trained model; use another RUN or --resume", run)
    if (run / SEEDS_FILE).exists():
        raise AfgenError("this run folder holds a multi-seed run; pass --seeds to resume it", run)
    run.mkdir(parents=True, exist_ok=True)
    packed = open_packed(features, check=not checked)  # a multi-seed train checked the store once, up front
    store_config = FeatureStore(features).config()
    classes = class_order(store_config, packed.labels)
    splits = resolve_splits(packed, cfg)
    if not packed.has_audio()[splits["train"]].any():
        log.warning("no training clip has audio: the regression branch gets no signal, only "
                    "the classification branch trains")
    ctx = _Context(packed, cfg, run, splits, {c: i for i, c in enumerate(classes)}, resume, show_progress)
    train_idx = splits["train"]
    models: dict[str, nn.Module] = {}
    metrics: dict[str, dict[str, float]] = {}
    best: dict[str, str] = {}
    frames_ok = packed.frame_bands is not None
    if not frames_ok:
        log.info("this store has no per-frame audio (audio_frames): the per-frame generation stages are skipped")
    for stage in (s for s in STAGES.values() if s.kind == "generator" and (frames_ok or s.audio == "clip")):
        lam = cfg.lambda_reg if stage.lambda_reg is None else stage.lambda_reg
        sctx = ctx.frames(pooled=False) if stage.audio == "frames" else ctx
        models[stage.name], metrics[stage.name], paths = sctx.fit_generator(stage.name, train_idx, lam)
        best[stage.name] = str(paths["best"])
        if stage.name == "generator":
            acc = ctx.new_generator(train_idx)
            state = load_checkpoint(paths["best_acc"])["state_dict"]
            acc.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
            models[GENERATOR_ACC] = acc.eval()
            best[GENERATOR_ACC] = str(paths["best_acc"])
    generator = models["generator"]
    generated = {**_out_of_fold(ctx, generator), **generated_audio(generator, packed, splits["val"])}
    fusion_train = ClipSet(packed, train_idx, ctx.label_index, generated)
    fusion_val = ClipSet(packed, splits["val"], ctx.label_index, generated)
    for stage in (s for s in STAGES.values() if s.kind == "fusion" and (frames_ok or s.audio == "clip")):
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        sctx, train_set, val_set = ctx, fusion_train, fusion_val
        if stage.audio == "frames":  # pooled per-frame audio; the per-frame generator's where a train clip has none
            sctx = ctx.frames(pooled=True)
            made = generated_audio(models["generator_frames"], packed, train_idx + splits["val"])
            train_set, val_set = (ClipSet(sctx.packed, idx, ctx.label_index, made) for idx in (train_idx, splits["val"]))
        model = sctx.fitted(AudioVisualClassifier(packed.visual_dim, len(classes), sctx.packed.audio_dim,
                                                  cfg.fusion_hidden, cfg.dropout, missing_token=stage.fill == "token"),
                            train_idx)
        metrics[stage.name], paths = fit_stage(
            FusionModule(model, cfg, ctx.weights(train_idx), stage, models.get(stage.teacher)), run / stage.name, cfg,
            loader(train_set, cfg, True, ctx.labels(train_idx)), loader(val_set, cfg, False, []),
            resume, show_progress)
        models[stage.name] = model.eval()
        best[stage.name] = str(paths["best"])

    for stage in (s for s in STAGES.values() if s.kind == "generator_through"):
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        model = ctx.new_generator(train_idx)
        model.load_state_dict(generator.state_dict())  # fine-tuned from the paper's generator
        module = ThroughModule(model, cfg, ctx.weights(train_idx), cfg.lambda_reg, models[stage.teacher])
        metrics[stage.name], paths = fit_stage(
            module, run / stage.name, cfg,
            loader(ClipSet(packed, train_idx, ctx.label_index), cfg, True, ctx.labels(train_idx)),
            loader(ClipSet(packed, splits["val"], ctx.label_index), cfg, False, []), resume, show_progress)
        models[stage.name] = model.eval()
        best[stage.name] = str(paths["best"])

    with_audio = [i for i in splits["val"] if packed.audio(i) is not None]
    if with_audio:
        real = torch.from_numpy(np.stack([packed.audio(i) for i in with_audio]))
        fake = torch.from_numpy(np.stack([generated[i] for i in with_audio]))
        metrics["generator"]["val_cos_raw"] = float(F.cosine_similarity(fake, real, dim=1).mean())
        metrics["generator"]["val_cos_centered"] = float(F.cosine_similarity(
            fake - generator.audio_norm.mean, real - generator.audio_norm.mean, dim=1).mean())

    seconds = time.perf_counter() - start
    if not is_rank_zero():  # under DDP every rank trains; rank 0 alone writes the run
        return TrainResult(run=run, metrics=metrics, seconds=seconds)
    dims = {"input_dim": packed.visual_dim, "num_classes": len(classes), "audio_dim": packed.audio_dim,
            "frame_bands": packed.frame_bands}
    buffer = io.BytesIO()
    torch.save({
        "format": BUNDLE_FORMAT, "models": {k: m.state_dict() for k, m in models.items()},
        "tokens": [k for k, m in models.items() if getattr(m, "token", None) is not None],
        "frame_models": [k for k in models if k in STAGES and STAGES[k].audio == "frames"],
        "classes": classes, "dims": dims, "train": to_dict(cfg), "features": str(Path(features).resolve()),
        "store_config": json.dumps(store_config),
    }, buffer)
    atomic_write_bytes(run / BUNDLE, buffer.getvalue())
    atomic_write_json(run / PROVENANCE, {
        "train": to_dict(cfg), "features": str(Path(features).resolve()),
        "store_config": store_config, "versions": package_versions(),
        "git_commit": git_commit(), "seed": cfg.seed, "classes": classes,
        "splits": {k: len(v) for k, v in splits.items()}, "best_checkpoints": best,
        "stages": {name: stage.description for name, stage in STAGES.items()},
        "out_of_fold": {"folds": cfg.oof_folds, "cache": f"{OOF_DIR}/generated.npz" if cfg.oof_folds >= 2 else None},
        "metrics": metrics, "seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    atomic_write_json(run / METRICS, metrics)
    return TrainResult(run=run, metrics=metrics, seconds=seconds)
