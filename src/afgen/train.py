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
                 token or generated audio), chosen on validation accuracy, ties broken by
                 validation loss
RUN/model.pt bundles the chosen weights of all of them (loaded with weights_only=True) and
RUN/provenance.json records the settings, the store's config, versions and the git commit.
With several seeds, RUN/seed-<s>/ holds one such run per seed and RUN/seeds.json lists them.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from afgen.config import TrainConfig, from_dict, to_dict
from afgen.data import PackedFeatures, load_packed
from afgen.dataset import stratified_splits
from afgen.errors import AfgenError, RunError
from afgen.extract import package_versions
from afgen.methods import GENERATOR_ACC, STAGES, Stage
from afgen.models import AudioVisualClassifier, SoundFeatureGenerator, generator_loss
from afgen.models.standardize import Standardizer
from afgen.store import FeatureStore, atomic_write_bytes, atomic_write_json, read_json

log = logging.getLogger(__name__)

BUNDLE = "model.pt"
METRICS = "metrics.json"
PROVENANCE = "provenance.json"
SEEDS_FILE = "seeds.json"
OOF_DIR = "oof"


# -- data ---------------------------------------------------------------------------------
class ClipSet(Dataset):
    """(v_C, label, real audio or zeros, has real audio, generated audio or zeros) per clip.

    `generated` maps clip index -> a generated audio feature (raw space): what a classifier
    sees where a clip's audio is missing or dropped and its stage fills with generated audio.
    Sets up to `cache_mb` of v_C are held in memory (training reads each clip every epoch);
    larger ones are read from the memory-mapped store per item.
    """

    def __init__(self, packed: PackedFeatures, indices: list[int], label_index: dict[str, int],
                 generated: dict[int, np.ndarray] | None = None, cache_mb: float = TrainConfig.cache_mb) -> None:
        self.packed, self.indices, self.label_index = packed, indices, label_index
        self.generated = generated or {}
        self.audio_dim = packed.audio_dim
        rows = sum(int(packed.rgb_offsets[i + 1] - packed.rgb_offsets[i]) for i in indices)
        self._cache = None
        if rows * packed.visual_dim * 4 <= cache_mb * 2**20:
            self._cache = [self._item(k) for k in range(len(indices))]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        return self._cache[k] if self._cache is not None else self._item(k)

    def _item(self, k: int):
        i = self.indices[k]
        audio = self.packed.audio(i)
        has = audio is not None
        zeros = np.zeros(self.audio_dim, np.float32)
        return (torch.from_numpy(self.packed.v_c(i)), self.label_index[self.packed.labels[i]],
                torch.from_numpy(audio if has else zeros),
                has, torch.from_numpy(np.asarray(self.generated.get(i, zeros), np.float32)))


def collate(batch):
    """Pad v_C to the longest clip; returns (v_c, lengths, labels, audio, has_audio, generated)."""
    seqs, labels, audio, has, gen = zip(*batch)
    lengths = torch.tensor([len(s) for s in seqs])
    padded = torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True)
    return padded, lengths, torch.tensor(labels), torch.stack(audio), torch.tensor(has), torch.stack(gen)


def resolve_splits(packed: PackedFeatures, cfg: TrainConfig) -> dict[str, list[int]]:
    """Indices per split: the manifest's splits, a stratified split for clips without one."""
    splits = list(packed.splits)
    unassigned = {packed.ids[i]: packed.labels[i] for i, s in enumerate(splits) if s is None}
    if unassigned:
        assigned = stratified_splits(unassigned, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        splits = [s if s is not None else assigned[packed.ids[i]] for i, s in enumerate(splits)]
    out = {s: [i for i, x in enumerate(splits) if x == s] for s in ("train", "val", "test")}
    if not out["train"] or not out["val"]:
        raise AfgenError(f"need train and val clips, got {len(out['train'])} train and "
                         f"{len(out['val'])} val; extract more clips or set splits in the CSV")
    return out


def _topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean()


def selection_score(correct: float, loss: float) -> float:
    """Validation accuracy with ties broken by loss: the number of correct clips minus a
    penalty in [0, 1) that grows with the loss, so one more correct clip always wins and,
    at equal accuracy, the lower loss wins (never the earlier epoch by default)."""
    return float(correct) - float(loss) / (1.0 + float(loss))


# -- Lightning modules --------------------------------------------------------------------
class _Stage(L.LightningModule):
    """Shared by both kinds: `_step(batch, stage)` for training and validation, AdamW, and
    exact epoch-level validation sums (CE, MSE, correct clips) for checkpoint selection."""

    cfg: TrainConfig
    lambda_reg: float = 0.0

    def training_step(self, batch, _):
        return self._step(batch, "train")

    def validation_step(self, batch, _):
        self._step(batch, "val")

    def on_validation_epoch_start(self) -> None:
        self._sums: dict[str, float] = defaultdict(float)

    def _accumulate(self, logits, labels, weights, mse_per_clip=None, has=None, cos=None) -> None:
        ce = F.cross_entropy(logits, labels, weight=weights, reduction="none")
        w = weights[labels] if weights is not None else torch.ones_like(ce)
        top5 = (logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]).any(1)
        add = {"ce": ce.sum(), "w": w.sum(), "correct": (logits.argmax(1) == labels).sum(), "correct5": top5.sum(),
               "n": len(labels)}
        if mse_per_clip is not None:
            add |= {"mse": mse_per_clip[has].sum(), "n_audio": has.sum()}
        if cos is not None:
            add |= {"cos": cos.sum(), "n_cos": len(cos)}
        for key, value in add.items():
            self._sums[key] += float(value)

    def on_validation_epoch_end(self) -> None:
        """Validation metrics from exact sums over the whole split: summed across ranks under
        DDP (each rank holds a disjoint part of it), so they do not depend on the device count."""
        keys = ("ce", "w", "correct", "correct5", "n", "mse", "n_audio", "cos", "n_cos")
        sums = torch.tensor([self._sums.get(k, 0.0) for k in keys], dtype=torch.float64)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        s = dict(zip(keys, sums.tolist()))
        if not s["n"]:
            return
        ce = s["ce"] / s["w"]
        mse = s["mse"] / s["n_audio"] if s["n_audio"] else 0.0
        objective = ce + self.lambda_reg * mse
        logged = {"val_objective": objective, "val_select": selection_score(s["correct"], objective),
                  "val_acc_exact": s["correct"] / s["n"], "val_acc": s["correct"] / s["n"],
                  "val_top5": s["correct5"] / s["n"], "val_loss": objective, "val_ce": ce, "val_clips": s["n"]}
        if isinstance(self, GeneratorModule):
            logged["val_mse"] = mse
            if s["n_cos"]:
                logged["val_cos"] = s["cos"] / s["n_cos"]
        for key, value in logged.items():
            self.log(key, value, prog_bar=key in ("val_loss", "val_acc"))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)


class GeneratorModule(_Stage):
    def __init__(self, model: SoundFeatureGenerator, cfg: TrainConfig, class_weights: torch.Tensor | None,
                 lambda_reg: float) -> None:
        super().__init__()
        self.model, self.cfg, self.lambda_reg = model, cfg, lambda_reg
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))

    def _step(self, batch, stage: str):
        v_c, lengths, labels, audio, has, _ = batch
        logits, audio_hat = self.model(v_c, lengths)
        weights = self.class_weights if self.class_weights.numel() else None
        target = self.model.audio_norm(audio)
        loss, ce, mse = generator_loss(logits, audio_hat, labels, target, has, self.lambda_reg, weights)
        if stage == "val":  # epoch metrics from exact sums (see _Stage.on_validation_epoch_end)
            cos = F.cosine_similarity(self.model.audio_norm.inverse(audio_hat[has]), audio[has], dim=1)
            self._accumulate(logits, labels, weights, ((audio_hat - target) ** 2).mean(1), has, cos)
            return loss
        n = len(labels)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=n)
        self.log("train_ce", ce, on_epoch=True, on_step=False, batch_size=n)
        self.log("train_mse", mse, on_epoch=True, on_step=False, batch_size=n)
        self.log("train_acc", _topk(logits, labels, 1), on_epoch=True, on_step=False, batch_size=n)
        return loss


def fill_audio(audio: torch.Tensor, missing: torch.Tensor, fill: str, generated: torch.Tensor | None = None,
               mean: torch.Tensor | None = None) -> torch.Tensor:
    """The audio a classifier is given: real where present, `fill` where `missing` [B].

    "token" zero-fills too: the model swaps in its token where `missing` is set; "real" is
    the upper bound, where only clips that never had audio are missing."""
    m = missing[:, None]
    if fill in ("zero", "token", "real"):
        return audio.masked_fill(m, 0.0)
    if fill == "mean":
        return torch.where(m, mean.expand_as(audio), audio)
    if fill == "generated":
        return torch.where(m, generated, audio)
    raise AfgenError(f"unknown audio fill {fill!r}")


class FusionModule(_Stage):
    def __init__(self, model: AudioVisualClassifier, cfg: TrainConfig, class_weights: torch.Tensor | None,
                 stage: Stage) -> None:
        super().__init__()
        self.model, self.cfg, self.stage = model, cfg, stage
        self.p = cfg.modality_dropout if stage.dropout else 0.0
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))

    def _step(self, batch, stage: str):
        v_c, lengths, labels, audio, has, generated = batch
        missing = ~has
        if stage == "train" and self.p > 0:
            missing = missing | (torch.rand(len(audio), device=audio.device) < self.p)
        audio = fill_audio(audio, missing, self.stage.fill, generated)
        logits = self.model(v_c, lengths, audio, missing)
        weights = self.class_weights if self.class_weights.numel() else None
        loss = F.cross_entropy(logits, labels, weight=weights)
        if stage == "val":
            self._accumulate(logits, labels, weights)
            return loss
        n = len(labels)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=n)
        self.log("train_acc", _topk(logits, labels, 1), on_epoch=True, on_step=False, batch_size=n)
        return loss


# -- fitting ------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run: Path
    metrics: dict[str, dict[str, float]]
    seconds: float
    per_seed: dict[int, dict] | None = None


def _class_weights(labels: list[int], n_classes: int, mode: str) -> torch.Tensor | None:
    if mode != "weighted_loss":
        return None
    counts = Counter(labels)
    total = len(labels)
    return torch.tensor([total / (n_classes * max(1, counts[c])) for c in range(n_classes)], dtype=torch.float32)


def _loader(ds: ClipSet, cfg: TrainConfig, train: bool, labels: list[int]) -> DataLoader:
    gen = torch.Generator().manual_seed(cfg.seed)
    if train and cfg.class_balance == "sampler":
        counts = Counter(labels)
        weights = [1.0 / counts[y] for y in labels]
        sampler = WeightedRandomSampler(weights, len(labels), replacement=True, generator=gen)
        return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate)
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=train, generator=gen, collate_fn=collate)


def _fit(module: L.LightningModule, stage_dir: Path, cfg: TrainConfig, train_dl, val_dl,
         resume: bool, show_progress: bool) -> tuple[dict[str, float], dict[str, Path]]:
    """Fit one stage; load and return its selected weights' validation metrics and checkpoints.

    Generators are selected (and early-stopped) on their own objective, validation CE + λ·MSE,
    with the best-accuracy checkpoint kept too (best_acc.ckpt); classifiers on validation
    accuracy with ties broken by validation loss (`selection_score`)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    ckpt_dir = stage_dir / "checkpoints"
    generator = isinstance(module, GeneratorModule)
    monitor, mode = ("val_objective", "min") if generator else ("val_select", "max")
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode,
                           save_last=True, enable_version_counter=False)
    callbacks = [best, EarlyStopping(monitor=monitor, mode=mode, patience=cfg.patience)]
    if generator:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best_acc", monitor="val_select", mode="max",
                                         enable_version_counter=False))
    trainer = L.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
        callbacks=callbacks,
        logger=[CSVLogger(stage_dir, name="logs", version=0),
                TensorBoardLogger(stage_dir, name="tensorboard", version=0)],
        deterministic=True, enable_progress_bar=show_progress, enable_model_summary=False,
        log_every_n_steps=1, num_sanity_val_steps=0,
    )
    if trainer.world_size > 1:  # each rank validates a disjoint part of the split, none twice
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        sampler = UnrepeatedDistributedSampler(val_dl.dataset, num_replicas=trainer.world_size,
                                               rank=trainer.global_rank, shuffle=False)
        val_dl = DataLoader(val_dl.dataset, batch_size=val_dl.batch_size, sampler=sampler, collate_fn=collate)
    last = ckpt_dir / "last.ckpt"
    if resume and last.is_file():
        load_checkpoint(last)  # a damaged checkpoint is a clear error, not Lightning's traceback
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resume and last.is_file() else None)
    chosen = Path(best.best_model_path) if best.best_model_path else last
    if chosen.parent.resolve() != ckpt_dir.resolve():  # a run copied or moved since that checkpoint was written
        chosen = ckpt_dir / chosen.name
    paths = {"best": chosen}
    if generator:
        acc_path = ckpt_dir / "best_acc.ckpt"
        paths["best_acc"] = acc_path if acc_path.is_file() else paths["best"]
    trainer.strategy.barrier()  # rank 0 has written the checkpoints every rank now reads
    module.load_state_dict(load_checkpoint(paths["best"])["state_dict"])
    metrics = trainer.validate(module, val_dl, verbose=False)[0]
    if trainer.is_global_zero:
        plot_curves(stage_dir / "logs" / "version_0" / "metrics.csv", stage_dir / "learning_curve.png",
                    stage_dir.name)
    return {k: float(v) for k, v in metrics.items()}, paths


def plot_curves(metrics_csv: Path, out: Path, title: str) -> None:
    """Loss and accuracy per epoch (train and validation) from Lightning's CSV log."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics_csv.is_file():
        return
    rows = list(csv.DictReader(metrics_csv.open()))
    series: dict[str, dict[int, float]] = {}
    for row in rows:
        for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
            if row.get(key):
                series.setdefault(key, {})[int(row["epoch"])] = float(row[key])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, kind in zip(axes, ("loss", "acc")):
        for split in ("train", "val"):
            data = series.get(f"{split}_{kind}", {})
            if data:
                ax.plot(list(data), list(data.values()), label=split, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if kind == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title}: learning curves")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


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


def kfold(indices: list[int], labels: list[str], k: int, seed: int) -> list[list[int]]:
    """k stratified, seeded folds of `indices` (every class spread evenly over the folds)."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, lab in zip(indices, labels):
        by_class[lab].append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for lab in sorted(by_class):
        members = np.random.default_rng([seed, 7]).permutation(sorted(by_class[lab])).tolist()
        for j, i in enumerate(members):
            folds[(j + offset) % k].append(i)
        offset += len(members)
    return [sorted(f) for f in folds]


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
        return _class_weights(self.labels(indices), len(self.label_index), self.cfg.class_balance)

    def fitted(self, model: nn.Module, indices: list[int]) -> nn.Module:
        """Standardisation statistics from these (training) clips only, computed once per set
        of clips (every stage of a run reuses them instead of re-reading the features)."""
        key = tuple(indices)
        if key not in self._norms:
            visual = Standardizer(self.packed.visual_dim).fit(
                torch.from_numpy(np.concatenate([self.packed.v_c(i) for i in indices])))
            rows = [self.packed.audio(i) for i in indices if self.packed.audio(i) is not None]
            audio = Standardizer(self.packed.audio_dim).fit(
                torch.from_numpy(np.stack(rows)) if rows else torch.zeros(1, self.packed.audio_dim))
            self._norms[key] = (visual.state_dict(), audio.state_dict())
        visual_state, audio_state = self._norms[key]
        model.visual_norm.load_state_dict(visual_state)
        model.audio_norm.load_state_dict(audio_state)
        return model

    def new_generator(self, train_idx: list[int]) -> SoundFeatureGenerator:
        c = self.cfg
        return self.fitted(SoundFeatureGenerator(self.packed.visual_dim, len(self.label_index), self.packed.audio_dim,
                                                 c.hidden, c.layers, c.dropout, c.input_dropout), train_idx)

    def fit_generator(self, name: str, train_idx: list[int], lambda_reg: float):
        L.seed_everything(self.cfg.seed, workers=True, verbose=False)
        model = self.new_generator(train_idx)
        train_dl = _loader(ClipSet(self.packed, train_idx, self.label_index), self.cfg, True, self.labels(train_idx))
        val_dl = _loader(ClipSet(self.packed, self.splits["val"], self.label_index), self.cfg, False, [])
        module = GeneratorModule(model, self.cfg, self.weights(train_idx), lambda_reg)
        metrics, paths = _fit(module, self.run / name, self.cfg, train_dl, val_dl, self.resume, self.show_progress)
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


def is_rank_zero() -> bool:
    """True except in the other ranks of a multi-device (DDP) run: they train but write nothing."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def class_order(store_config: dict, labels: list[str]) -> list[str]:
    """The classes of a store in the dataset's order (e.g. moments_categories.txt), recorded
    at extraction; classes it does not list follow, sorted."""
    order = (store_config.get("dataset") or {}).get("classes") or []
    present = set(labels)
    return [c for c in order if c in present] + sorted(present - set(order))


def seed_runs(run: str | Path) -> list[Path]:
    """The single-seed run folders of RUN: RUN itself, or RUN/seed-<s>/ for a multi-seed run."""
    run = Path(run)
    listing = run / SEEDS_FILE
    if listing.is_file():
        fix = f"run `afgen verify {run} --repair`, then `afgen train FEATURES {run} --seeds ... --resume`"
        try:
            return [run / name for name in read_json(listing, fix)["runs"]]
        except (KeyError, TypeError):
            raise RunError(f"damaged: no list of runs; {fix}", listing) from None
    return [run]


def train(features: str | Path, run: str | Path, cfg: TrainConfig = TrainConfig(), resume: bool = False,
          show_progress: bool = True, seeds: Sequence[int] | None = None) -> TrainResult:
    """Train every stage; write RUN/ as described above. With `seeds`, one independent run per
    seed in RUN/seed-<s>/ (same store, same splits), and `metrics` is their mean."""
    run = Path(run)
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
            per_seed[seed] = read_json(sub / METRICS, f"run `afgen verify {run} --repair`, then this command again")
        else:
            todo.append(seed)
    workers = min(cfg.seed_workers, len(todo))
    if workers > 1 and cfg.devices not in ("auto", "1"):
        raise AfgenError("--seed-workers > 1 cannot be combined with --devices > 1; use one or the other")
    load_packed(features)  # build the packed view once, before any worker reads it
    if workers > 1:
        import multiprocessing as mp
        import os
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // workers)
        log.info("training seeds %s in %d parallel processes (%d torch thread(s) each)", todo, workers, threads)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
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
    """One seed's run in a worker process (spawned): no progress bars, Lightning's chatter off."""
    import warnings

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    return _train_one(features, run, cfg, resume, checked=True, show_progress=False).metrics


def _train_one(features: str | Path, run: Path, cfg: TrainConfig, resume: bool, checked: bool = False,
               show_progress: bool = True) -> TrainResult:
    start = time.perf_counter()
    if (run / BUNDLE).exists() and not resume:
        raise AfgenError("this run folder already holds a trained model; use another RUN or --resume", run)
    if (run / SEEDS_FILE).exists():
        raise AfgenError("this run folder holds a multi-seed run; pass --seeds to resume it", run)
    run.mkdir(parents=True, exist_ok=True)
    packed = load_packed(features, check=not checked)  # a multi-seed train checked the store once, up front
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
    for stage in (s for s in STAGES.values() if s.kind == "generator"):
        lam = cfg.lambda_reg if stage.lambda_reg is None else stage.lambda_reg
        models[stage.name], metrics[stage.name], paths = ctx.fit_generator(stage.name, train_idx, lam)
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
    for stage in (s for s in STAGES.values() if s.kind == "fusion"):
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        model = ctx.fitted(AudioVisualClassifier(packed.visual_dim, len(classes), packed.audio_dim, cfg.fusion_hidden,
                                                 cfg.dropout, missing_token=stage.fill == "token"), train_idx)
        metrics[stage.name], paths = _fit(
            FusionModule(model, cfg, ctx.weights(train_idx), stage), run / stage.name, cfg,
            _loader(fusion_train, cfg, True, ctx.labels(train_idx)), _loader(fusion_val, cfg, False, []),
            resume, show_progress)
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
    dims = {"input_dim": packed.visual_dim, "num_classes": len(classes), "audio_dim": packed.audio_dim}
    buffer = io.BytesIO()
    torch.save({
        "format": 2, "models": {k: m.state_dict() for k, m in models.items()},
        "tokens": [k for k, m in models.items() if getattr(m, "token", None) is not None],
        "classes": classes, "dims": dims, "train": to_dict(cfg), "features": str(Path(features).resolve()),
        "store_config": json.dumps(store_config),
    }, buffer)
    atomic_write_bytes(run / BUNDLE, buffer.getvalue())
    atomic_write_json(run / PROVENANCE, {
        "train": to_dict(cfg), "features": str(Path(features).resolve()),
        "store_config": store_config, "versions": package_versions(),
        "git_commit": _git_commit(), "seed": cfg.seed, "classes": classes,
        "splits": {k: len(v) for k, v in splits.items()}, "best_checkpoints": best,
        "stages": {name: stage.description for name, stage in STAGES.items()},
        "out_of_fold": {"folds": cfg.oof_folds, "cache": f"{OOF_DIR}/generated.npz" if cfg.oof_folds >= 2 else None},
        "metrics": metrics, "seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    atomic_write_json(run / METRICS, metrics)
    return TrainResult(run=run, metrics=metrics, seconds=seconds)


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


def _damaged(path: Path, exc: Exception, fix: str) -> RunError:
    first = str(exc).strip().splitlines()[0].split(". ")[0][:160] if str(exc).strip() else ""
    return RunError(f"damaged ({type(exc).__name__}{': ' + first if first else ''}); {fix}", path)


def load_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint (weights_only); a damaged one is a RunError naming it and the fix."""
    run = path.parent.parent.parent
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"missing checkpoint; run `afgen verify {run} --repair`, then `afgen train ... --resume`",
                       path) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad zip/pickle
        raise _damaged(path, exc, f"run `afgen verify {run} --repair`, then `afgen train FEATURES {run} --resume` "
                                  "to retrain that stage") from None


def load_bundle(path: Path) -> dict:
    """RUN/model.pt (weights_only); a missing, damaged or outdated one is a RunError naming it."""
    run = path.parent
    if not path.is_file():
        raise RunError("no model.pt: not a finished run (train it with `afgen train`, or finish an interrupted "
                       "one with `--resume`)", run)
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad zip/pickle
        raise _damaged(path, exc, f"run `afgen verify {run} --repair`, then `afgen train FEATURES {run} --resume` "
                                  "to rebuild it") from None
    if not isinstance(bundle, dict) or bundle.get("format") != 2:
        raise RunError("this run was trained by an older afgen (model.pt format 1) or is not a model bundle; "
                       "retrain it with `afgen train`", path)
    return bundle


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
    for name, state in bundle["models"].items():
        if "classify.weight" in state:
            model = SoundFeatureGenerator(d["input_dim"], d["num_classes"], d["audio_dim"], cfg.hidden, cfg.layers,
                                          cfg.dropout, cfg.input_dropout)
        else:
            model = AudioVisualClassifier(d["input_dim"], d["num_classes"], d["audio_dim"], cfg.fusion_hidden,
                                          cfg.dropout, missing_token=name in bundle["tokens"])
        model.load_state_dict(state)
        models[name] = model.eval()
    return TrainedRun(models, list(bundle["classes"]), cfg, Path(bundle["features"]),
                      json.loads(bundle["store_config"]), runs[0])
