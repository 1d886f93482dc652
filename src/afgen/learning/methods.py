"""The registry of what `afgen train` trains (stages) and what `afgen evaluate` scores (methods).

A *stage* is one trained model: a generator (LSTM, CE + λ·MSE) or an audio-visual classifier
with a rule for the audio it sees in training. A *method* is one row of the evaluation
table: a trained model plus the rule that fills a test clip's missing audio. Adding a row
is one entry in METHODS (and one in STAGES when it needs a model of its own); train.py and
evaluate.py only loop over these tables.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """A model `afgen train` fits, in RUN/<name>/.

    kind        "generator" (SoundFeatureGenerator), "fusion" (AudioVisualClassifier), or
                "generator_through": a generator fine-tuned through the frozen classifier `teacher`
    lambda_reg  generator only: the λ of CE + λ·MSE; None takes TrainConfig.lambda_reg
    dropout     fusion only: train with modality dropout (TrainConfig.modality_dropout)
    fill        fusion only: what a training clip's missing or dropped audio becomes:
                "zero", "token" (a learned embedding) or "generated" (out-of-fold
                generator output, so training sees what testing will)
    never_audio fusion only: the audio is absent for every clip, in training and validation
                (the visual-only control with the audio-visual classifier's own head)
    teacher     fusion only: a stage whose predictions with real audio this one also learns
                (cross-modal distillation: CE + weight·T²·KL, on clips with real audio)
    audio       "clip": the store's clip-level audio feature; "frames": its per-video-frame
                sequence (audio_frames): a generator regresses every frame, a classifier reads
                the sequence pooled over time (mean and max). Skipped for a store without it.
    """

    name: str
    kind: str
    description: str
    lambda_reg: float | None = None
    dropout: bool = False
    fill: str = "generated"
    never_audio: bool = False
    teacher: str | None = None
    audio: str = "clip"


@dataclass(frozen=True)
class Method:
    """One row of the evaluation table.

    model      the trained model that scores it: a stage name, or "generator_acc" (the main
               generator's checkpoint chosen on validation accuracy instead of its objective)
    fill       how a missing test audio is filled: "real" (never missing: the upper bound),
               "zero", "mean" (training mean), "generated", "token", "absent" (missing at
               every rate: a visual-only row); None for a generator's own classification
               branch (visual only)
    generator  which generator produces "generated" audio
    audio      "clip" or "frames": which audio the model reads (see Stage.audio)
    """

    key: str
    label: str
    model: str
    fill: str | None
    generator: str = "generator"
    audio: str = "clip"


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("generator", "generator", "LSTM generator, CE + λ·MSE (the paper)"),
    Stage("generator_l0", "generator", "the same LSTM with λ = 0 (no audio regression)", lambda_reg=0.0),
    Stage("generator_frames", "generator", "the same LSTM regressing the audio of every video frame (audio_frames) "
          "instead of the clip summary: CE + λ·MSE over the frames (per-frame generation)", audio="frames"),
    Stage("fusion", "fusion", "audio-visual classifier on real audio (train clips without audio: generated)"),
    Stage("fusion_md", "fusion", "audio-visual classifier, modality dropout, zero-filled", dropout=True, fill="zero"),
    Stage("fusion_token", "fusion", "audio-visual classifier, modality dropout, learned missing-audio token",
          dropout=True, fill="token"),
    Stage("fusion_gen", "fusion", "audio-visual classifier, modality dropout, dropped audio replaced by "
          "out-of-fold generated audio", dropout=True, fill="generated"),
    Stage("fusion_visual", "fusion", "the audio-visual classifier's architecture trained with the audio always "
          "absent: the visual-only control for the AV head", fill="zero", never_audio=True),
    Stage("fusion_frames", "fusion", "an audio-visual classifier reading per-frame audio pooled over time (mean and "
          "max); train clips without audio: the per-frame generator's output", fill="generated", audio="frames"),
    Stage("generator_av", "generator_through", "the paper's generator fine-tuned through the frozen AV classifier: "
          "CE of AV(v, g(v)) + T²·KL to AV(v, a) on real audio + λ·MSE (generation trained for the classifier)",
          teacher="fusion"),
    Stage("fusion_distill", "fusion", "a visual-only student with the AV classifier's architecture, trained with CE "
          "and to match the AV classifier's predictions on real audio (Hinton et al. 2015)", fill="zero",
          never_audio=True, teacher="fusion"),
)}

#: The extra generator weights kept from the main generator's run (no training of its own).
GENERATOR_ACC = "generator_acc"

METHODS: dict[str, Method] = {m.key: m for m in (
    Method("visual_only", "Visual only (generator's classification branch)", "generator", None),
    Method("visual_only_l0", "Visual only, λ = 0 (no audio regression)", "generator_l0", None),
    Method("visual_av_head", "Visual only, AV classifier's head (trained without audio)", "fusion_visual", "absent"),
    Method("visual_distilled", "Visual only, distilled from the AV classifier on real audio", "fusion_distill",
           "absent"),
    Method("av_real", "AV + real audio (upper bound)", "fusion", "real"),
    Method("av_zero", "AV + zero-filled audio", "fusion", "zero"),
    Method("av_mean", "AV + training-mean audio", "fusion", "mean"),
    Method("av_generated", "AV + generated audio (paper)", "fusion", "generated"),
    Method("av_generated_acc", "AV + generated audio, generator chosen on val accuracy", "fusion", "generated",
           generator=GENERATOR_ACC),
    Method("av_generated_through", "AV + generated audio, generator trained through the classifier", "fusion",
           "generated", generator="generator_av"),
    Method("av_frames_generated", "AV on pooled per-frame audio + per-frame generated audio", "fusion_frames",
           "generated", generator="generator_frames", audio="frames"),
    Method("av_md_zero", "AV trained with modality dropout, zero-filled", "fusion_md", "zero"),
    Method("av_md_token", "AV trained with modality dropout, learned missing token", "fusion_token", "token"),
    Method("av_md_generated", "AV trained on generated audio (out-of-fold), generated", "fusion_gen", "generated"),
)}

#: The paper's method: every other row is compared with it, paired.
PAPER = "av_generated"
#: Methods every row is compared against at every rate, paired: the paper's, visual-only
#: and the usual missing-modality baseline (modality dropout with zeros).
BASELINES: tuple[str, ...] = (PAPER, "visual_only", "av_md_zero")
#: The visual-only rows: every method is also compared, paired, with the better of them at
#: each rate ("best visual-only"), so a gain at r = 1 is not the AV head's pooling alone.
VISUAL_ONLY: tuple[str, ...] = ("visual_only", "visual_av_head")
BEST_VISUAL = "best_visual_only"
#: Rows that may not compete for "best method": the upper bound sees audio that is missing.
NOT_COMPETING: frozenset[str] = frozenset({"av_real"})
