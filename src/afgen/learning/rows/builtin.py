"""The paper's protocol and its baselines: the LSTM generator (Lee et al. 2019) and its
ablations, the audio-visual classifiers with every rule for missing audio, modality dropout,
distillation, generation trained through the classifier, per-frame generation."""

from __future__ import annotations

from afgen.learning import stage_recipes as recipe
from afgen.learning.fills import ABSENT, MEAN, OWN, ZERO, generated, real
from afgen.learning.method_registry import Method, Stage, register_method, register_stage

for stage in (
    Stage("generator", "LSTM generator, CE + λ·MSE (the paper)", recipe.generator()),
    Stage("generator_l0", "the same LSTM with λ = 0 (no audio regression)", recipe.generator(lambda_reg=0.0)),
    Stage("generator_frames", "the same LSTM regressing the audio of every video frame (audio_frames) instead of the "
          "clip summary: CE + λ·MSE over the frames (per-frame generation)", recipe.generator(per_frame=True),
          per_frame_audio=True),
    Stage("generator_acc", "the paper's generator, checkpoint chosen on validation accuracy instead of its objective "
          "(no training of its own)", recipe.checkpoint_of("generator"), needs=("generator",)),
    Stage("fusion", "audio-visual classifier on real audio (train clips without audio: generated)",
          recipe.classifier(fill=generated("generator")), needs=("generator",)),
    Stage("fusion_md", "audio-visual classifier, modality dropout, zero-filled", recipe.classifier(ZERO, dropout=True)),
    Stage("fusion_token", "audio-visual classifier, modality dropout, learned missing-audio token",
          recipe.classifier(OWN, dropout=True)),
    Stage("fusion_gen", "audio-visual classifier, modality dropout, dropped audio replaced by out-of-fold generated "
          "audio", recipe.classifier(generated("generator"), dropout=True), needs=("generator",)),
    Stage("fusion_visual", "the audio-visual classifier's architecture trained with the audio always absent: the "
          "visual-only control for the AV head", recipe.classifier(ZERO, never_audio=True)),
    Stage("fusion_frames", "an audio-visual classifier reading per-frame audio pooled over time (mean and max); train "
          "clips without audio: the per-frame generator's output",
          recipe.classifier(generated("generator_frames"), out_of_fold=False, per_frame=True),
          needs=("generator_frames",), per_frame_audio=True),
    Stage("generator_av", "the paper's generator fine-tuned through the frozen AV classifier: CE of AV(v, g(v)) + "
          "T²·KL to AV(v, a) on real audio + λ·MSE (generation trained for the classifier)",
          recipe.through("generator", teacher="fusion"), needs=("generator", "fusion")),
    Stage("fusion_distill", "a visual-only student with the AV classifier's architecture, trained with CE and to "
          "match the AV classifier's predictions on real audio (Hinton et al. 2015)",
          recipe.classifier(ZERO, never_audio=True, teacher="fusion"), needs=("fusion",)),
):
    register_stage(stage)

for method in (
    Method("visual_only", "Visual only (generator's classification branch)", "generator", ABSENT, baseline=True,
           visual_reference=True),
    Method("visual_only_l0", "Visual only, λ = 0 (no audio regression)", "generator_l0", ABSENT),
    Method("visual_av_head", "Visual only, AV classifier's head (trained without audio)", "fusion_visual", ABSENT,
           visual_reference=True),
    Method("visual_distilled", "Visual only, distilled from the AV classifier on real audio", "fusion_distill", ABSENT),
    Method("av_real", "AV + real audio (the AV classifier's upper bound)", "fusion", real("generator"), competes=False),
    Method("av_zero", "AV + zero-filled audio", "fusion", ZERO),
    Method("av_mean", "AV + training-mean audio", "fusion", MEAN),
    Method("av_generated", "AV + generated audio (paper)", "fusion", generated("generator"), paper=True, baseline=True),
    Method("av_generated_acc", "AV + generated audio, generator chosen on val accuracy", "fusion",
           generated("generator_acc")),
    Method("av_generated_through", "AV + generated audio, generator trained through the classifier", "fusion",
           generated("generator_av")),
    Method("av_frames_generated", "AV on pooled per-frame audio + per-frame generated audio", "fusion_frames",
           generated("generator_frames")),
    Method("av_md_zero", "AV trained with modality dropout, zero-filled", "fusion_md", ZERO, baseline=True),
    Method("av_md_token", "AV trained with modality dropout, learned missing token", "fusion_token", OWN),
    Method("av_md_generated", "AV trained on generated audio (out-of-fold), generated", "fusion_gen",
           generated("generator")),
):
    register_method(method)
