"""Fitting one stage with Lightning: the generator and classifier modules, their loaders and the
checkpoint selection (generators on CE + λ·MSE, classifiers on accuracy, ties by loss)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from afgen.config import TrainConfig
from afgen.contracts.runfolder import load_checkpoint
from afgen.learning.batches import ClipSet, collate
from afgen.learning.fills import ZERO, Fill
from afgen.learning.models import AudioVisualClassifier, SoundFeatureGenerator, audio_cosine, generator_loss, masked_frame_mse
from afgen.learning.plots import plot_curves


def _topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean()


def distillation(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """T²·KL(teacher || student) of logits at temperature T (Hinton et al. 2015): the term every
    stage that learns from the AV classifier's predictions on real audio adds."""
    return t * t * F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), log_target=True,
                            reduction="batchmean")


def selection_score(correct: float, loss: float) -> float:
    """Validation accuracy with ties broken by loss: the number of correct clips minus a
    penalty in [0, 1) that grows with the loss, so one more correct clip always wins and,
    at equal accuracy, the lower loss wins (never the earlier epoch by default)."""
    return float(correct) - float(loss) / (1.0 + float(loss))


# -- Lightning modules --------------------------------------------------------------------
class StageModule(L.LightningModule):
    """The base of every stage's LightningModule: `_step(batch, phase)` ("train" or "val") for
    both loops, AdamW, and exact epoch-level validation sums (`_accumulate`: CE, MSE, correct
    clips) from which the shared fit selects checkpoints. A subclass sets `self.model` (what the
    stage keeps) and `self.cfg`, and may change what is monitored:

    monitor             (metric, mode) the checkpoint is chosen and early-stopped on: validation
                        accuracy with ties broken by loss (classifiers), or the objective CE + λ·MSE
    keep_best_accuracy  also keep the best-accuracy checkpoint (best_acc.ckpt)
    reports_audio       log the validation MSE and cosine of generated audio
    """

    cfg: TrainConfig
    lambda_reg: float = 0.0
    monitor: tuple[str, str] = ("val_select", "max")
    keep_best_accuracy: bool = False
    reports_audio: bool = False

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
        # On the module's device: under DDP on GPUs the reduction goes through NCCL, which
        # rejects CPU tensors.
        sums = torch.tensor([self._sums.get(k, 0.0) for k in keys], dtype=torch.float64, device=self.device)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        s = dict(zip(keys, sums.cpu().tolist()))
        if not s["n"]:
            return
        ce = s["ce"] / s["w"]
        mse = s["mse"] / s["n_audio"] if s["n_audio"] else 0.0
        objective = ce + self.lambda_reg * mse
        logged = {"val_objective": objective, "val_select": selection_score(s["correct"], objective),
                  "val_acc_exact": s["correct"] / s["n"], "val_acc": s["correct"] / s["n"],
                  "val_top5": s["correct5"] / s["n"], "val_loss": objective, "val_ce": ce, "val_clips": s["n"]}
        if self.reports_audio:
            logged["val_mse"] = mse
            if s["n_cos"]:
                logged["val_cos"] = s["cos"] / s["n_cos"]
        for key, value in logged.items():
            self.log(key, value, prog_bar=key in ("val_loss", "val_acc"))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)


class GeneratorModule(StageModule):
    """The paper's generator: CE + λ·MSE on the clips with real audio, selected on that objective."""

    monitor = ("val_objective", "min")
    keep_best_accuracy = True
    reports_audio = True

    def __init__(self, model: SoundFeatureGenerator, cfg: TrainConfig, class_weights: torch.Tensor | None,
                 lambda_reg: float) -> None:
        super().__init__()
        self.model, self.cfg, self.lambda_reg = model, cfg, lambda_reg
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))

    def _step(self, batch, phase: str):
        v_c, lengths, labels, audio, has, _ = batch
        logits, audio_hat = self.model(v_c, lengths)
        weights = self.class_weights if self.class_weights.numel() else None
        target = self.model.audio_norm(audio)
        loss, ce, mse, per_clip = self._losses(logits, audio_hat, labels, target, lengths, has, weights)
        scored, extra = self._scored(v_c, lengths, labels, audio, has, logits, audio_hat, weights)
        loss = loss + extra
        if phase == "val":  # epoch metrics from exact sums (see StageModule.on_validation_epoch_end)
            self._accumulate(scored, labels, weights, per_clip, has, self._cosine(audio_hat, audio, has))
            return loss
        n = len(labels)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=n)
        self.log("train_ce", ce, on_epoch=True, on_step=False, batch_size=n)
        self.log("train_mse", mse, on_epoch=True, on_step=False, batch_size=n)
        self.log("train_acc", _topk(scored, labels, 1), on_epoch=True, on_step=False, batch_size=n)
        return loss

    def _losses(self, logits, audio_hat, labels, target, lengths, has, weights):
        """(CE + λ·MSE, CE, MSE, per-clip MSE) against the standardised clip-level audio feature."""
        loss, ce, mse = generator_loss(logits, audio_hat, labels, target, has, self.lambda_reg, weights)
        return loss, ce, mse, ((audio_hat - target) ** 2).mean(1)

    def _cosine(self, audio_hat, audio, has):
        """Cosine of generated to real audio features (raw space) on the clips with real audio."""
        return audio_cosine(self.model.audio_norm.inverse(audio_hat[has]), audio[has])

    def _scored(self, v_c, lengths, labels, audio, has, logits, audio_hat, weights):
        """(the logits validation scores, any loss beside CE + λ·MSE): the generator's own branch."""
        return logits, 0.0


class FrameGeneratorModule(GeneratorModule):
    """The per-frame generator: CE + λ·MSE over every valid frame of the clips with real audio
    (batches carry the padded per-frame audio, see batches.FrameAudio)."""

    def _losses(self, logits, audio_hat, labels, target, lengths, has, weights):
        ce = F.cross_entropy(logits, labels, weight=weights)
        mse, per_clip = masked_frame_mse(audio_hat, target, lengths, has)
        return ce + self.lambda_reg * mse, ce, mse, per_clip

    def _cosine(self, audio_hat, audio, has):
        return None  # a sequence per clip: its validation reports the per-frame MSE only


class ThroughModule(GeneratorModule):
    """A generator trained for the classifier: its generated audio goes through the frozen
    audio-visual classifier, whose CE (and, on clips with real audio, T²·KL to its predictions
    with that audio) joins the generator's own CE + λ·MSE. Validation scores the classifier's
    predictions on generated audio."""

    def __init__(self, model: SoundFeatureGenerator, cfg: TrainConfig, class_weights: torch.Tensor | None,
                 lambda_reg: float, classifier: AudioVisualClassifier) -> None:
        super().__init__(model, cfg, class_weights, lambda_reg)
        self._classifier = (classifier.eval().requires_grad_(False),)

    def _scored(self, v_c, lengths, labels, audio, has, logits, audio_hat, weights):
        classifier = self._classifier[0].to(v_c.device)
        present = torch.zeros(len(labels), dtype=torch.bool, device=v_c.device)
        av = classifier(v_c, lengths, self.model.audio_norm.inverse(audio_hat), present)
        extra = F.cross_entropy(av, labels, weight=weights)
        if has.any():
            with torch.no_grad():
                teacher = classifier(v_c[has], lengths[has], audio[has], present[has])
            extra = extra + self.cfg.distill_weight * distillation(av[has], teacher, self.cfg.distill_temperature)
        return av, extra


class ClassifierModule(StageModule):
    """A classifier of (video, audio): CE, where a training clip's missing audio (no track,
    dropped with probability `dropout`, or always with `never_audio`) is given by `fill`;
    with a `teacher`, also T²·KL to the teacher's predictions with the clip's real audio.
    Subclasses change the loss by overriding `_extra_loss`."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, class_weights: torch.Tensor | None,
                 fill: Fill = ZERO, dropout: float = 0.0, never_audio: bool = False,
                 teacher: nn.Module | None = None) -> None:
        super().__init__()
        self.model, self.cfg, self.fill, self.never_audio = model, cfg, fill, never_audio
        # Held outside the module's registry: the teacher is frozen, not trained or checkpointed here.
        self._teacher = (teacher.eval().requires_grad_(False),) if teacher is not None else ()
        self.p = dropout
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))

    def _step(self, batch, phase: str):
        v_c, lengths, labels, audio, has, generated = batch
        missing = torch.ones_like(has) if self.never_audio else ~has
        if phase == "train" and self.p > 0:
            missing = missing | (torch.rand(len(audio), device=audio.device) < self.p)
        real = audio
        audio = self.fill.apply(audio, missing, generated)
        logits = self._forward(v_c, lengths, audio, missing)
        weights = self.class_weights if self.class_weights.numel() else None
        loss = F.cross_entropy(logits, labels, weight=weights) + self._extra_loss(v_c, lengths, real, has, missing, phase)
        if self._teacher and phase == "train" and has.any():
            loss = loss + self.cfg.distill_weight * self._distillation(logits[has], v_c[has], lengths[has], real[has])
        if phase == "val":
            self._accumulate(logits, labels, weights)
            return loss
        n = len(labels)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=n)
        self.log("train_acc", _topk(logits, labels, 1), on_epoch=True, on_step=False, batch_size=n)
        return loss

    def _forward(self, v_c: torch.Tensor, lengths: torch.Tensor, audio: torch.Tensor,
                 missing: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch (a subclass may also keep what its extra loss needs)."""
        return self.model(v_c, lengths, audio, missing)

    def _extra_loss(self, v_c: torch.Tensor, lengths: torch.Tensor, real: torch.Tensor, has: torch.Tensor,
                    missing: torch.Tensor, phase: str) -> torch.Tensor | float:
        """A loss beside CE (none here): e.g. reconstructing the real audio where it was dropped."""
        return 0.0

    def _distillation(self, logits: torch.Tensor, v_c: torch.Tensor, lengths: torch.Tensor,
                      audio: torch.Tensor) -> torch.Tensor:
        """T²·KL(teacher || student) at temperature T, the teacher seeing the clips' real audio."""
        teacher = self._teacher[0].to(v_c.device)
        with torch.no_grad():
            target = teacher(v_c, lengths, audio, torch.zeros(len(audio), dtype=torch.bool, device=audio.device))
        return distillation(logits, target, self.cfg.distill_temperature)


def class_weights(labels: list[int], n_classes: int, mode: str) -> torch.Tensor | None:
    if mode != "weighted_loss":
        return None
    counts = Counter(labels)
    total = len(labels)
    return torch.tensor([total / (n_classes * max(1, counts[c])) for c in range(n_classes)], dtype=torch.float32)


def loader(ds: ClipSet, cfg: TrainConfig, train: bool, labels: list[int]) -> DataLoader:
    gen = torch.Generator().manual_seed(cfg.seed)
    if train and cfg.class_balance == "sampler":
        counts = Counter(labels)
        weights = [1.0 / counts[y] for y in labels]
        sampler = WeightedRandomSampler(weights, len(labels), replacement=True, generator=gen)
        return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate)
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=train, generator=gen, collate_fn=collate)


def fit_stage(module: L.LightningModule, stage_dir: Path, cfg: TrainConfig, train_dl, val_dl,
         resume: bool, show_progress: bool) -> tuple[dict[str, float], dict[str, Path]]:
    """Fit one stage; load and return its selected weights' validation metrics and checkpoints.

    Selected (and early-stopped) on `module.monitor`: generators on their own objective,
    validation CE + λ·MSE, with the best-accuracy checkpoint kept too (best_acc.ckpt);
    classifiers on validation accuracy with ties broken by validation loss (`selection_score`)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    ckpt_dir = stage_dir / "checkpoints"
    monitor, mode = module.monitor
    keep_accuracy = module.keep_best_accuracy
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode,
                           save_last=True, enable_version_counter=False)
    callbacks = [best, EarlyStopping(monitor=monitor, mode=mode, patience=cfg.patience)]
    if keep_accuracy:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best_acc", monitor="val_select", mode="max",
                                         enable_version_counter=False))
    from afgen.learning.quiet import quiet_library_warnings, quiet_lightning_logs

    quiet_lightning_logs()  # Lightning's tips and banners; -v shows them
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
    with quiet_library_warnings():
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resume and last.is_file() else None)
    chosen = Path(best.best_model_path) if best.best_model_path else last
    if chosen.parent.resolve() != ckpt_dir.resolve():  # a run copied or moved since that checkpoint was written
        chosen = ckpt_dir / chosen.name
    paths = {"best": chosen}
    if keep_accuracy:
        acc_path = ckpt_dir / "best_acc.ckpt"
        paths["best_acc"] = acc_path if acc_path.is_file() else paths["best"]
    trainer.strategy.barrier()  # rank 0 has written the checkpoints every rank now reads
    module.load_state_dict(load_checkpoint(paths["best"])["state_dict"])
    with quiet_library_warnings():
        metrics = trainer.validate(module, val_dl, verbose=False)[0]
    if trainer.is_global_zero:
        plot_curves(stage_dir / "logs" / "version_0" / "metrics.csv", stage_dir / "learning_curve.png",
                    stage_dir.name)
    return {k: float(v) for k, v in metrics.items()}, paths


def is_rank_zero() -> bool:
    """True except in the other ranks of a multi-device (DDP) run: they train but write nothing."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
