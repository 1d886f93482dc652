"""`afgen train`: the generator, then the audio-visual classifiers, with Lightning.

Stages, each in RUN/<stage>/ with checkpoints (best on validation accuracy, and last), CSV
and TensorBoard logs and a learning-curve PNG:
  generator  LSTM over v_C, loss = CE + λ·MSE on clips with audio
  fusion     audio-visual classifier on real audio; training clips without audio get the
             generator's audio (trained first, so the two are sequential, not joint)
  fusion_md  the same with modality dropout (audio zeroed with probability p)
RUN/model.pt bundles the best weights of all three (loaded with weights_only=True) and
RUN/provenance.json records the settings, the store's config, versions and the git commit.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from afgen.config import TrainConfig, to_dict
from afgen.data import PackedFeatures, load_packed
from afgen.dataset import stratified_splits
from afgen.errors import AfgenError
from afgen.extract import package_versions
from afgen.models import AudioVisualClassifier, SoundFeatureGenerator, generator_loss
from afgen.store import FeatureStore, atomic_write_json

log = logging.getLogger(__name__)

BUNDLE = "model.pt"
STAGES = ("generator", "fusion", "fusion_md")


# -- data ---------------------------------------------------------------------------------
class ClipSet(Dataset):
    """(v_C, label, raw audio feature or zeros, has_audio) for clips of a packed store."""

    def __init__(self, packed: PackedFeatures, indices: list[int], label_index: dict[str, int],
                 audio_override: dict[int, np.ndarray] | None = None) -> None:
        self.packed, self.indices, self.label_index = packed, indices, label_index
        self.audio_override = audio_override or {}
        self.audio_dim = packed.audio_dim

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = self.indices[k]
        audio = self.packed.audio(i)
        has = audio is not None
        if audio is None:
            audio = self.audio_override.get(i, np.zeros(self.audio_dim, np.float32))
        return (torch.from_numpy(self.packed.v_c(i)), self.label_index[self.packed.labels[i]],
                torch.from_numpy(np.array(audio, np.float32)), has)


def collate(batch):
    """Pad v_C to the longest clip; returns (v_c, lengths, labels, audio, has_audio)."""
    seqs, labels, audio, has = zip(*batch)
    lengths = torch.tensor([len(s) for s in seqs])
    padded = torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True)
    return padded, lengths, torch.tensor(labels), torch.stack(audio), torch.tensor(has)


def resolve_splits(packed: PackedFeatures, cfg: TrainConfig) -> dict[str, list[int]]:
    """Indices per split: the manifest's splits, a stratified split for clips without one."""
    splits = list(packed.splits)
    unassigned = {packed.ids[i]: packed.labels[i] for i, s in enumerate(splits) if s is None}
    if unassigned:
        assigned = stratified_splits(unassigned, cfg.val_fraction, cfg.test_fraction, cfg.seed)
        splits = [s if s is not None else assigned[packed.ids[i]] for i, s in enumerate(splits)]
    out = {s: [i for i, x in enumerate(splits) if x == s] for s in ("train", "val", "test")}
    if not out["train"] or not out["val"]:
        raise AfgenError(f"need train and val clips, got {len(out['train'])} train and "
                         f"{len(out['val'])} val; extract more clips or set splits in the CSV")
    return out


def _topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean()


# -- Lightning modules --------------------------------------------------------------------
class _Stage(L.LightningModule):
    """Shared by both stages: one `_step(batch, stage)` for training and validation, AdamW."""

    cfg: TrainConfig

    def training_step(self, batch, _):
        return self._step(batch, "train")

    def validation_step(self, batch, _):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)


class GeneratorModule(_Stage):
    def __init__(self, model: SoundFeatureGenerator, cfg: TrainConfig, class_weights: torch.Tensor | None) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))

    def _step(self, batch, stage: str):
        v_c, lengths, labels, audio, has = batch
        logits, audio_hat = self.model(v_c, lengths)
        weights = self.class_weights if self.class_weights.numel() else None
        loss, ce, mse = generator_loss(logits, audio_hat, labels, self.model.audio_norm(audio), has,
                                       self.cfg.lambda_reg, weights)
        n = len(labels)
        self.log(f"{stage}_loss", loss, on_epoch=True, on_step=False, batch_size=n, prog_bar=stage == "val")
        self.log(f"{stage}_ce", ce, on_epoch=True, on_step=False, batch_size=n)
        self.log(f"{stage}_mse", mse, on_epoch=True, on_step=False, batch_size=n)
        self.log(f"{stage}_acc", _topk(logits, labels, 1), on_epoch=True, on_step=False, batch_size=n,
                 prog_bar=stage == "val")
        if stage == "val":
            self.log("val_top5", _topk(logits, labels, 5), on_epoch=True, on_step=False, batch_size=n)
            if has.any():
                cos = F.cosine_similarity(self.model.audio_norm.inverse(audio_hat[has]), audio[has], dim=1)
                self.log("val_cos", cos.mean(), on_epoch=True, on_step=False, batch_size=int(has.sum()))
        return loss



class FusionModule(_Stage):
    def __init__(self, model: AudioVisualClassifier, cfg: TrainConfig, class_weights: torch.Tensor | None,
                 modality_dropout: float) -> None:
        super().__init__()
        self.model, self.cfg, self.p = model, cfg, modality_dropout
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))

    def _step(self, batch, stage: str):
        v_c, lengths, labels, audio, _ = batch
        if stage == "train" and self.p > 0:
            drop = torch.rand(len(audio), device=audio.device) < self.p
            audio = audio.masked_fill(drop[:, None], 0.0)
        logits = self.model(v_c, lengths, audio)
        weights = self.class_weights if self.class_weights.numel() else None
        loss = F.cross_entropy(logits, labels, weight=weights)
        n = len(labels)
        self.log(f"{stage}_loss", loss, on_epoch=True, on_step=False, batch_size=n, prog_bar=stage == "val")
        self.log(f"{stage}_acc", _topk(logits, labels, 1), on_epoch=True, on_step=False, batch_size=n,
                 prog_bar=stage == "val")
        if stage == "val":
            self.log("val_top5", _topk(logits, labels, 5), on_epoch=True, on_step=False, batch_size=n)
        return loss



# -- fitting ------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run: Path
    metrics: dict[str, dict[str, float]]
    seconds: float


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
         resume: bool, show_progress: bool) -> tuple[dict[str, float], Path]:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    ckpt_dir = stage_dir / "checkpoints"
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_acc", mode="max",
                           save_last=True, enable_version_counter=False)
    trainer = L.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
        callbacks=[best, EarlyStopping(monitor="val_acc", mode="max", patience=cfg.patience)],
        logger=[CSVLogger(stage_dir, name="logs", version=0),
                TensorBoardLogger(stage_dir, name="tensorboard", version=0)],
        deterministic=True, enable_progress_bar=show_progress, enable_model_summary=False,
        log_every_n_steps=1, num_sanity_val_steps=0,
    )
    last = ckpt_dir / "last.ckpt"
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resume and last.is_file() else None)
    best_path = Path(best.best_model_path) if best.best_model_path else last
    state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    metrics = trainer.validate(module, val_dl, verbose=False)[0]
    plot_curves(stage_dir / "logs" / "version_0" / "metrics.csv", stage_dir / "learning_curve.png", stage_dir.name)
    return {k: float(v) for k, v in metrics.items()}, best_path


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
        gen = model.generate(v_c, lengths).numpy()
        for row in gen:
            out[indices[k]] = row
            k += 1
    return out


def train(features: str | Path, run: str | Path, cfg: TrainConfig = TrainConfig(), resume: bool = False,
          show_progress: bool = True) -> TrainResult:
    """Train the generator and both audio-visual classifiers; write RUN/ as described above."""
    start = time.perf_counter()
    run = Path(run)
    if (run / BUNDLE).exists() and not resume:
        raise AfgenError("this run folder already holds a trained model; use another RUN or --resume", run)
    run.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    packed = load_packed(features)
    classes = sorted(set(packed.labels))
    label_index = {c: i for i, c in enumerate(classes)}
    splits = resolve_splits(packed, cfg)
    if not packed.has_audio()[splits["train"]].any():
        log.warning("no training clip has audio: the regression branch gets no signal, only "
                    "the classification branch trains")
    audio_dim = packed.audio_dim
    train_labels = [label_index[packed.labels[i]] for i in splits["train"]]
    weights = _class_weights(train_labels, len(classes), cfg.class_balance)

    # statistics from the training split only
    train_vc = torch.from_numpy(np.concatenate([packed.v_c(i) for i in splits["train"]]))
    audio_rows = [packed.audio(i) for i in splits["train"] if packed.audio(i) is not None]
    train_audio = torch.from_numpy(np.stack(audio_rows)) if audio_rows else torch.zeros(1, audio_dim)

    def fitted(model):
        model.visual_norm.fit(train_vc)
        model.audio_norm.fit(train_audio)
        return model

    metrics, best = {}, {}
    generator = fitted(SoundFeatureGenerator(packed.visual_dim, len(classes), audio_dim, cfg.hidden, cfg.layers,
                                             cfg.dropout, cfg.input_dropout))
    train_set = ClipSet(packed, splits["train"], label_index)
    val_set = ClipSet(packed, splits["val"], label_index)
    metrics["generator"], best["generator"] = _fit(
        GeneratorModule(generator, cfg, weights), run / "generator", cfg,
        _loader(train_set, cfg, True, train_labels), _loader(val_set, cfg, False, []), resume, show_progress)

    # fill training clips without audio with generated audio for the classifiers
    missing_train = [i for i in splits["train"] if packed.audio(i) is None]
    filled = generated_audio(generator, packed, missing_train) if missing_train else {}
    fusion_train = ClipSet(packed, splits["train"], label_index, audio_override=filled)
    fusions = {}
    for stage, p in (("fusion", 0.0), ("fusion_md", cfg.modality_dropout)):
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        model = fitted(AudioVisualClassifier(packed.visual_dim, len(classes), audio_dim, cfg.fusion_hidden, cfg.dropout))
        metrics[stage], best[stage] = _fit(
            FusionModule(model, cfg, weights, p), run / stage, cfg,
            _loader(fusion_train, cfg, True, train_labels), _loader(val_set, cfg, False, []), resume, show_progress)
        fusions[stage] = model

    gen_val = generated_audio(generator, packed, splits["val"])
    with_audio = [i for i in splits["val"] if packed.audio(i) is not None]
    if with_audio:
        real = torch.from_numpy(np.stack([packed.audio(i) for i in with_audio]))
        fake = torch.from_numpy(np.stack([gen_val[i] for i in with_audio]))
        metrics["generator"]["val_cos_raw"] = float(F.cosine_similarity(fake, real, dim=1).mean())
        metrics["generator"]["val_cos_centered"] = float(F.cosine_similarity(
            fake - generator.audio_norm.mean, real - generator.audio_norm.mean, dim=1).mean())

    hparams = {"input_dim": packed.visual_dim, "num_classes": len(classes), "audio_dim": audio_dim}
    torch.save({
        "generator": generator.state_dict(), "fusion": fusions["fusion"].state_dict(),
        "fusion_md": fusions["fusion_md"].state_dict(), "classes": classes, "dims": hparams,
        "train": to_dict(cfg), "features": str(Path(features).resolve()),
        "store_config": json.dumps(FeatureStore(features).config()),
    }, run / BUNDLE)
    seconds = time.perf_counter() - start
    atomic_write_json(run / "provenance.json", {
        "train": to_dict(cfg), "features": str(Path(features).resolve()),
        "store_config": FeatureStore(features).config(), "versions": package_versions(),
        "git_commit": _git_commit(), "seed": cfg.seed, "classes": classes,
        "splits": {k: len(v) for k, v in splits.items()}, "best_checkpoints": {k: str(v) for k, v in best.items()},
        "metrics": metrics, "seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return TrainResult(run=run, metrics=metrics, seconds=seconds)


@dataclass
class TrainedRun:
    generator: SoundFeatureGenerator
    fusion: AudioVisualClassifier
    fusion_md: AudioVisualClassifier
    classes: list[str]
    train: TrainConfig
    features: Path
    store_config: dict


def load_run(run: str | Path) -> TrainedRun:
    """The trained models of a run (RUN/model.pt, loaded with weights_only=True), in eval mode."""
    path = Path(run) / BUNDLE
    if not path.is_file():
        raise AfgenError("no model.pt: not a finished run (train it with `afgen train`)", Path(run))
    bundle = torch.load(path, map_location="cpu", weights_only=True)
    from afgen.config import from_dict

    cfg = from_dict(TrainConfig, bundle["train"])
    d = bundle["dims"]
    gen = SoundFeatureGenerator(d["input_dim"], d["num_classes"], d["audio_dim"], cfg.hidden, cfg.layers,
                                cfg.dropout, cfg.input_dropout)
    gen.load_state_dict(bundle["generator"])
    fusions = {}
    for stage in ("fusion", "fusion_md"):
        fusions[stage] = AudioVisualClassifier(d["input_dim"], d["num_classes"], d["audio_dim"],
                                               cfg.fusion_hidden, cfg.dropout)
        fusions[stage].load_state_dict(bundle[stage])
    return TrainedRun(gen.eval(), fusions["fusion"].eval(), fusions["fusion_md"].eval(), list(bundle["classes"]),
                      cfg, Path(bundle["features"]), json.loads(bundle["store_config"]))
