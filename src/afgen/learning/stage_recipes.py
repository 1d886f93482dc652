"""Training recipes of the built-in stages, each a `train(ctx)` for Stage(train=...): the
paper's LSTM generator (clip-level or per-frame), a checkpoint of another stage, an
audio-visual classifier with a training fill, and a generator trained through a classifier.
Plugins may use them too (method_api re-exports them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from afgen.contracts.runfolder import load_checkpoint
from afgen.learning.fills import ZERO, Fill
from afgen.learning.fit import ClassifierModule, FrameGeneratorModule, GeneratorModule, ThroughModule
from afgen.learning.models import AudioVisualClassifier, FrameGenerator, SoundFeatureGenerator, audio_cosines
from afgen.learning.stage_context import StageContext, Trained, generated_audio

Recipe = Callable[[StageContext], Trained]


def new_generator(ctx: StageContext) -> SoundFeatureGenerator:
    """The paper's LSTM for this context's audio (per-frame when the view is the sequence),
    standardised on the training clips."""
    c = ctx.cfg
    kind = FrameGenerator if ctx.per_frame else SoundFeatureGenerator
    return ctx.standardized(kind(ctx.visual_dim, ctx.num_classes, ctx.audio_dim, c.hidden, c.layers, c.dropout,
                                 c.input_dropout))


def generator(lambda_reg: float | None = None, per_frame: bool = False) -> Recipe:
    """The LSTM generator, CE + λ·MSE (λ: TrainConfig.lambda_reg unless given); per_frame: it
    regresses the audio of every video frame (audio_frames)."""
    def train(ctx: StageContext) -> Trained:
        view = ctx.frames(pooled=False) if per_frame else ctx
        lam = ctx.cfg.lambda_reg if lambda_reg is None else lambda_reg
        view.seed()
        model = new_generator(view)
        module = (FrameGeneratorModule if view.per_frame else GeneratorModule)(model, ctx.cfg, view.class_weights(), lam)
        out = view.fit(module)
        if not view.per_frame:
            out.metrics.update(_cosines(model, view))
        return out

    return train


def _cosines(model: SoundFeatureGenerator, ctx: StageContext) -> dict[str, float]:
    """Cosine of generated to real audio on the validation clips with audio, raw and mean-centred."""
    with_audio = [i for i in ctx.val_idx if ctx.packed.audio(i) is not None]
    if not with_audio:
        return {}
    made = generated_audio(model, ctx.packed, with_audio)
    real = torch.from_numpy(np.stack([ctx.packed.audio(i) for i in with_audio]))
    fake = torch.from_numpy(np.stack([made[i] for i in with_audio]))
    raw, centred = audio_cosines(fake, real, model.audio_norm.mean)
    return {"val_cos_raw": float(raw.mean()), "val_cos_centered": float(centred.mean())}


def checkpoint_of(stage: str, role: str = "best_acc") -> Recipe:
    """No training of its own: the weights of `stage`'s checkpoint `role` (e.g. the paper's
    generator chosen on validation accuracy instead of its objective)."""
    def train(ctx: StageContext) -> Trained:
        source = ctx.output(stage)
        model = new_generator(ctx)
        path = source.checkpoints[role]
        state = load_checkpoint(path)["state_dict"]
        model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
        return Trained(model.eval(), {}, {"best": path})

    return train


def classifier(fill: Fill = ZERO, dropout: bool = False, never_audio: bool = False, teacher: str | None = None,
               out_of_fold: bool = True, per_frame: bool = False) -> Recipe:
    """The audio-visual classifier. fill: what a training clip's missing or dropped audio becomes
    (fills.generated(stage): that generator's output, out-of-fold unless out_of_fold=False; OWN:
    a learned missing-audio token); dropout: train with modality dropout
    (TrainConfig.modality_dropout); never_audio: the audio is absent for every clip (a
    visual-only control with the AV head); teacher: a stage whose predictions with real audio it
    also learns (T²·KL); per_frame: it reads the per-frame audio pooled over time."""
    def train(ctx: StageContext) -> Trained:
        view = ctx.frames(pooled=True) if per_frame else ctx
        made = view.generated(fill.generator, out_of_fold) if fill.generator else None
        view.seed()
        model = view.standardized(AudioVisualClassifier(ctx.visual_dim, ctx.num_classes, view.audio_dim,
                                                        ctx.cfg.fusion_hidden, ctx.cfg.dropout,
                                                        missing_token=fill.name == "own"))
        module = ClassifierModule(model, ctx.cfg, ctx.class_weights(), fill,
                                  ctx.cfg.modality_dropout if dropout else 0.0, never_audio,
                                  ctx.model(teacher) if teacher else None)
        return view.fit(module, view.train_loader(made), view.val_loader(made))

    return train


def through(start: str, teacher: str) -> Recipe:
    """The generator `start` fine-tuned through the frozen classifier `teacher`: CE of
    teacher(v, g(v)) + T²·KL to teacher(v, a) on real audio + λ·MSE."""
    def train(ctx: StageContext) -> Trained:
        ctx.seed()
        model = new_generator(ctx)
        model.load_state_dict(ctx.model(start).state_dict())
        return ctx.fit(ThroughModule(model, ctx.cfg, ctx.class_weights(), ctx.cfg.lambda_reg, ctx.model(teacher)))

    return train
