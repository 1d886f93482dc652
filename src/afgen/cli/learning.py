"""Commands of the learning wing: train, evaluate, predict, export-model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from afgen import config as C
from afgen.cli.app import (
    ClassBalance,
    DeviceOpt,
    EngineOpt,
    ShardOpt,
    Split,
    Verbose,
    WorkersOpt,
    app,
    console,
    ints,
    rates,
    setup_logging,
)
from afgen.errors import AfgenError


@app.command("train")
def train_cmd(
    features: Annotated[Path, typer.Argument(help="Feature store written by `afgen extract`.")],
    run: Annotated[Path, typer.Argument(help="Run folder for checkpoints, logs, curves and model.pt.")],
    epochs: Annotated[int, typer.Option(help="Maximum epochs per stage (early stopping on val accuracy).")] = C.TrainConfig.epochs,
    batch_size: Annotated[int, typer.Option(help="Clips per batch.")] = C.TrainConfig.batch_size,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = C.TrainConfig.lr,
    lambda_reg: Annotated[float, typer.Option(help="Weight λ of the audio regression MSE (standardised units).")] = C.TrainConfig.lambda_reg,
    hidden: Annotated[int, typer.Option(help="LSTM hidden size.")] = C.TrainConfig.hidden,
    layers: Annotated[int, typer.Option(help="LSTM layers.")] = C.TrainConfig.layers,
    dropout: Annotated[float, typer.Option(help="Dropout on the LSTM state and classifier.")] = C.TrainConfig.dropout,
    modality_dropout: Annotated[float, typer.Option(help="P(audio zeroed) for the modality-dropout classifier.")] = C.TrainConfig.modality_dropout,
    class_balance: Annotated[ClassBalance, typer.Option(help="weighted_loss, sampler or none.")] = C.TrainConfig.class_balance,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs.")] = C.TrainConfig.patience,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same metrics on the same machine).")] = C.TrainConfig.seed,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2: one independent run per seed in RUN/seed-S/ (same clips and splits); `afgen evaluate RUN` then reports every seed and their spread.")] = None,
    oof_folds: Annotated[int, typer.Option(help="Folds of the out-of-fold generated audio the classifiers train on (< 2: the generator's own, optimistic output).")] = C.TrainConfig.oof_folds,
    seed_workers: Annotated[int, typer.Option(help="With --seeds: train this many seeds at once, one process each (faster on CPU).")] = C.TrainConfig.seed_workers,
    devices: Annotated[str, typer.Option(help="Lightning devices (auto, 1, 2, ...): with more than one, every stage trains data-parallel (see --strategy).")] = C.TrainConfig.devices,
    accelerator: Annotated[str, typer.Option(help="Lightning accelerator: auto, cpu or gpu.")] = C.TrainConfig.accelerator,
    strategy: Annotated[str, typer.Option(help="Lightning strategy: auto, or ddp for several devices (one process per device; CPU processes talk over gloo). The command reruns itself once per extra device.")] = C.TrainConfig.strategy,
    methods: Annotated[str | None, typer.Option(help="Comma-separated rows (methods) to train, with every stage they need, e.g. av_generated,av_transformer_token; default: every registered row, installed plug-ins included (`afgen methods` lists them).")] = None,
    resume: Annotated[bool, typer.Option(help="Resume each stage from its last checkpoint.")] = False,
    verbose: Verbose = False,
) -> None:
    """Train every model the evaluation table needs: the LSTM generator (CE + λ·MSE; chosen on
    that objective) and its λ = 0 ablation, out-of-fold generators, the audio-visual
    classifiers (real audio; modality dropout with zeros, a learned token or generated audio),
    transformer fusion and reconstruction, and every installed plug-in's stages; with
    --methods, only the rows named and what they need.
    """
    setup_logging(verbose)
    from afgen.contracts.store import FeatureStore

    FeatureStore(features).require()  # a wrong path is refused before torch loads, and RUN is not created
    from afgen.learning.train import train

    cfg = C.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, lambda_reg=lambda_reg, hidden=hidden,
                        layers=layers, dropout=dropout, modality_dropout=modality_dropout,
                        class_balance=class_balance, patience=patience, seed=seed, oof_folds=oof_folds, seed_workers=seed_workers,
                        devices=devices, accelerator=accelerator, strategy=strategy,
                        methods=tuple(m.strip() for m in methods.split(",") if m.strip()) if methods else ())
    from afgen.learning.fit import is_rank_zero

    result = train(features, run, cfg, resume=resume, seeds=ints(seeds, "--seeds") if seeds else None)

    if not is_rank_zero():
        return
    print_train_metrics(result.metrics)
    console.print(f"run: {result.run} ({result.seconds:.0f} s); curves: {run}/*/learning_curve.png")


def print_train_metrics(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title="validation (mean over seeds when there are several)")
    for col in ("stage", "top-1", "top-5", "generated-vs-real cosine (centred)"):
        table.add_column(col)
    for stage, m in metrics.items():
        cos = m.get("val_cos_centered")
        table.add_row(stage, f"{100 * m['val_acc']:.1f}", f"{100 * m['val_top5']:.1f}",
                      f"{cos:.3f}" if cos is not None else "")
    console.print(table)


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by `afgen train`.")],
    features: Annotated[Path | None, typer.Option(help="Feature store (default: the one the run trained on).")] = None,
    split: Annotated[Split, typer.Option(help="Split to score.")] = C.EvalConfig.split,
    out: Annotated[Path | None, typer.Option(help="Folder for results.json, results.md and the plots (default: RUN/eval for the test split, RUN/eval-SPLIT for another).")] = None,
    missing_rates: Annotated[str, typer.Option(help="Comma-separated missing-audio rates.")] = ",".join(f"{r:g}" for r in C.EvalConfig.missing_rates),
    seed: Annotated[int, typer.Option(help="Seed of the missing-audio masks and of the bootstrap.")] = C.EvalConfig.seed,
    mask_draws: Annotated[int, typer.Option(help="Random missing-audio masks per rate; each cell averages over them.")] = C.EvalConfig.mask_draws,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = C.EvalConfig.bootstrap,
    primary: Annotated[str | None, typer.Option(help="The one comparison you declared before looking, ROW[:BASELINE][@RATE] (baseline: the paper's method, or best_visual_only; rate: the highest), e.g. my_method@1: reported first with its own 95% interval, while every other verdict stays simultaneous over the whole table.")] = C.EvalConfig.primary,
    verbose: Verbose = False,
) -> None:
    """The missing-audio protocol: every method at every missing rate, on the same masks.

    Each accuracy comes with a 95% bootstrap interval (over test clips, mask draws and seeds);
    each method is compared, paired, with the paper's method and with visual-only, and the
    verdicts (better / worse / no resolvable difference) are what a conclusion may quote.
    """
    setup_logging(verbose)
    cfg = C.EvalConfig(split=split, missing_rates=rates(missing_rates), seed=seed, mask_draws=mask_draws,
                       bootstrap=bootstrap, primary=primary)
    from afgen.contracts.runfolder import seed_runs

    seed_runs(run)  # a wrong path is refused before torch loads
    from afgen.learning.evaluate import evaluate

    result = evaluate(run, features, cfg, out=out)
    console.print(result.table, soft_wrap=True)
    console.print(f"tables and plots: {result.out}")


@app.command("methods")
def methods_cmd(verbose: Verbose = False) -> None:
    """Every registered row (method) and stage: what it is, where it comes from (built-in, your
    code or an installed plug-in of the `afgen.methods` entry-point group) and what it needs."""
    setup_logging(verbose)
    from rich.table import Table

    from afgen.learning.method_registry import registry

    reg = registry()
    rows = Table(title="rows of the evaluation table (afgen train --methods KEY,...)")
    rows.add_column("method", no_wrap=True)
    for col in ("what it is", "model (stage)", "missing audio", "needs", "from"):
        rows.add_column(col)
    for m in reg.methods.values():
        try:
            needs = ", ".join(s.name for s in reg.stages_for([m.key]))
        except AfgenError as exc:  # a row whose stage nothing registers (a half-installed plug-in)
            needs = f"[red]{exc}[/red]"
        rows.add_row(m.key, m.label, m.model, m.fill.description, needs, m.source)
    console.print(rows)
    stages = Table(title="stages (what afgen train fits)")
    stages.add_column("stage", no_wrap=True)
    for col in ("what it is", "needs", "from"):
        stages.add_column(col)
    for st in reg.stages.values():
        stages.add_row(st.name, st.description, ", ".join(st.needs), st.source)
    console.print(stages)
    for line in reg.broken.values():
        console.print(f"[red]{line}[/red]")


@app.command("compare")
def compare_cmd(
    evaluations: Annotated[list[Path], typer.Argument(help="Runs (their RUN/eval) or evaluation folders (from `afgen evaluate --out`).")],
    missing_rates: Annotated[str, typer.Option(help="Comma-separated rates to show.")] = "0,0.5,1",
    methods: Annotated[str | None, typer.Option(help="Comma-separated method keys to keep (e.g. visual_only,av_generated); default all.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the table to this markdown file.")] = None,
) -> None:
    """Several evaluations side by side: each method's accuracy with its interval at r = 0, 0.5, 1."""
    from afgen.learning.compare import compare

    keep = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    table = compare(evaluations, rates(missing_rates), keep)
    console.print(table, soft_wrap=True, markup=False)
    if out is not None:
        out.write_text(table)
        console.print(f"written to {out}")


@app.command("predict")
def predict_cmd(
    clips: Annotated[Path, typer.Argument(help="One clip, or many: a folder (recursive; a folder per class gives labels), a CSV of `path[,label]` or a list of paths. Clips with or without an audio track.")],
    run: Annotated[Path | None, typer.Option(help="Run folder written by `afgen train`.")] = None,
    onnx: Annotated[Path | None, typer.Option(help="Instead of --run: a folder from `afgen export-model RUN OUT` (ONNX files, run with onnxruntime).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write one row per clip to this .csv (or .jsonl): top-k actions and probabilities, whether the audio was real, missing (generated) or dropped, and why a clip could not be read. Rerunning skips clips already in it; a second run writing it at once is refused (different --shard I/N runs may share it). Default for a folder or list: predictions.csv.")] = None,
    top: Annotated[int, typer.Option(help="How many actions to list per clip.")] = C.PredictConfig.top,
    drop_audio: Annotated[bool, typer.Option(help="Score every clip as if its sound were missing (the generated audio feature stands in).")] = False,
    weights: Annotated[str | None, typer.Option(help="Backbone weights, if not those the run's features used.")] = None,
    workers: WorkersOpt = C.ExtractConfig.workers,
    device: DeviceOpt = C.ExtractConfig.device,
    engine: EngineOpt = C.ExtractConfig.engine,
    shard: ShardOpt = None,
    save_audio_feature: Annotated[Path | None, typer.Option(help="One clip: save the audio feature used (generated if missing) as .npy.")] = None,
    verbose: Verbose = False,
) -> None:
    """Top-k actions for your clips; generated audio stands in where a clip has no sound.

    One clip prints a table; a folder, CSV or list (or any input with --out) writes one row per
    clip, resumably, and prints top-1/top-k accuracy when the clips have labels.
    """
    setup_logging(verbose)
    from afgen.contracts.runfolder import require_model

    require_model(run, onnx)  # before torch loads
    if not clips.exists():
        raise AfgenError("no such clip, folder or list", clips)
    single = clips.is_file() and clips.suffix.lower() in C.VIDEO_EXTENSIONS and out is None
    if single:
        if shard is not None:
            raise AfgenError("--shard splits many clips between runs; one clip is not split: drop --shard", clips)
        _predict_one(clips, run, onnx, top, weights, device, save_audio_feature, drop_audio, engine, workers)
    else:
        _predict_many(clips, run, onnx, out or Path("predictions.csv"), top, drop_audio, weights,
                      C.ExtractConfig(workers=workers, device=device, engine=engine), shard)


def _predict_one(clip: Path, run, onnx, top, weights, device, save_audio_feature, drop_audio, engine, workers) -> None:
    from rich.table import Table

    from afgen.learning.predict import predict

    p = predict(clip, run, top=top, weights=weights, device=device, save_audio_feature=save_audio_feature, onnx=onnx,
                drop_audio=drop_audio, engine=engine, workers=workers)
    table = Table(title=f"{clip.name}: {p.t} frames at the run's fps")
    table.add_column("rank")
    table.add_column("action")
    table.add_column("probability", justify="right")
    for i, (name, prob) in enumerate(p.top, start=1):
        table.add_row(str(i), name, f"{prob:.3f}")
    console.print(table)
    if p.audio == "real":
        console.print("audio: the clip has an audio track; its real audio feature was used")
    elif p.audio == "dropped":
        console.print("audio: [bold]dropped[/] (--drop-audio) — the generated audio feature was used in its place")
    else:
        console.print("audio: [bold]missing[/] — the generated audio feature was used in its place")
    console.print(f"visual only: {p.visual_top[0][0]} ({p.visual_top[0][1]:.3f})")
    if save_audio_feature:
        console.print(f"audio feature saved to {save_audio_feature}")


def _predict_many(clips: Path, run, onnx, out: Path, top, drop_audio, weights, cfg, shard) -> None:
    from afgen.extraction.shards import parse_shard
    from afgen.learning.predict_batch import predict_many

    s = predict_many(clips, out, run, onnx, top=top, drop_audio=drop_audio, weights=weights, cfg=cfg,
                     shard=parse_shard(shard))
    console.print(f"{s.scored} scored, {s.failed} unreadable, {s.skipped} already in the output, "
                  f"in {s.seconds:.1f} s; predictions: {s.out}")
    if s.accuracy:
        a = s.accuracy
        console.print(f"on the {a['n']} labelled clips: top-1 {100 * a['top1']:.1f}%, top-{a['k']} {100 * a['topk']:.1f}%")


@app.command("export-model")
def export_model_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by `afgen train` (its first seed, for several).")],
    out: Annotated[Path, typer.Argument(help="Output folder for the exported files and export.json.")],
    format: Annotated[Literal[C.MODEL_FORMATS], typer.Option("--format", help="onnx (run with onnxruntime, any language) or torchscript.")] = "onnx",
    verbose: Verbose = False,
) -> None:
    """Export the generator (v_C -> class logits + generated audio feature) and the
    audio-visual classifier, with dynamic batch and sequence length, checked against PyTorch."""
    from afgen.export.model import export_model

    setup_logging(verbose)
    result = export_model(run, out, format)
    for path in result.files:
        console.print(f"wrote {path}")
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in result.diff.items())
    console.print(f"difference from PyTorch on a probe batch: {diffs}; inputs, outputs and classes: "
                  f"{result.out}/export.json")
