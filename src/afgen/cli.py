"""The `afgen` command line (Typer). Defaults come from config.py; this module only parses,
calls the API and prints."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from afgen import config as C
from afgen.errors import AfgenError

# Idle OpenMP threads sleep instead of spinning: torch's pool otherwise keeps a core busy
# between batches, and decoding, flow and small training steps in the same process slow
# down several-fold on a 2-core machine. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = typer.Typer(
    name="afgen",
    help=(
        "Action recognition when the audio is missing: generate the audio feature from the "
        "video (Lee et al., ICASSP 2019).\n\n"
        "Pipeline: synth (or your clips) -> extract -> train -> evaluate. "
        "`afgen demo` runs all of it on a synthetic dataset, offline."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")]
Layout = Annotated[str, typer.Option(help="Dataset layout: auto, folders, splits (MiT) or csv.")]
ClassesOpt = Annotated[str | None, typer.Option(
    "--only-classes", help="Comma-separated class names to keep (e.g. the paper's 10 MiT classes).")]
PerClass = Annotated[int | None, typer.Option(help="Keep N clips per class in each split: a seeded random choice, the same on every machine (recorded in the store's config.json).")]
PerClassSeed = Annotated[int, typer.Option(help="Seed of --per-class's choice.")]
Strict = Annotated[bool, typer.Option(help="Moments in Time: a CSV row whose class folder is absent is an error (default: skipped, with one warning).")]
# Options shared by `frames` and `extract`.
ClipsArg = Annotated[Path, typer.Argument(help="Dataset folder (folder per class or MiT) or CSV list.")]
FpsOpt = Annotated[float, typer.Option(help="Frames sampled per second, by timestamp.")]
FlowOpt = Annotated[str, typer.Option(help="Flow algorithm: farneback, dis or tvl1 (OpenCV); with extract also raft or raft_small (torchvision RAFT, on the backbone's device: slow on CPU, about 0.35 s (raft_small) or 1 s (raft) per 224-px frame pair here).")]
EncodingOpt = Annotated[str, typer.Option(help="Flow image encoding: hsv (seed) or xy (TSN).")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "numba", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _dataset(source: Path, layout: str, only_classes: str | None, per_class: int | None,
             strict: bool = C.DatasetConfig.strict, seed: int = C.DatasetConfig.per_class_seed):
    from afgen.extraction.dataset import discover

    classes = [c.strip() for c in only_classes.split(",") if c.strip()] if only_classes else None
    return discover(source, layout=layout, classes=classes, per_class=per_class, strict=strict, seed=seed)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the clips into.")],
    classes: Annotated[int, typer.Option(help="Number of classes (at most 10; from 7 on, two pairs look alike and differ only in sound).")] = C.SynthConfig.classes,
    clips_per_class: Annotated[int, typer.Option(help="Clips per class.")] = C.SynthConfig.clips_per_class,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical clips.")] = C.SynthConfig.seed,
    missing_audio: Annotated[float, typer.Option(help="Fraction of clips written without an audio stream.")] = C.SynthConfig.missing_audio,
    size: Annotated[int, typer.Option(help="Frame width and height in pixels.")] = C.SynthConfig.size,
    seconds: Annotated[float, typer.Option(help="Clip length in seconds.")] = C.SynthConfig.seconds,
    layout: Annotated[str, typer.Option(help="folders (folder per class + clips.csv) or mit (Moments in Time's layout and CSVs, with a listed class that has no folder and a listed clip that has no file, as users' copies have).")] = C.SynthConfig.layout,
    verbose: Verbose = False,
) -> None:
    """Write the synthetic audio-visual dataset (H.264 + AAC mp4, folder per class, clips.csv).

    Each class is a physical event whose sound follows its motion (impacts click, speed sets
    pitch), so the audio feature can be predicted from the video but not from one frame.
    """
    from afgen.extraction.synth import generate

    _setup_logging(verbose)
    cfg = C.SynthConfig(classes=classes, clips_per_class=clips_per_class, seed=seed,
                        missing_audio=missing_audio, size=size, seconds=seconds, layout=layout)
    listing = generate(out, cfg)
    what = "list with splits" if layout == "folders" else "Moments-in-Time folder"
    console.print(f"[green]wrote[/] {classes * clips_per_class} clips; {what}: {listing}")


@app.command()
def frames(
    clips: ClipsArg,
    out: Annotated[Path, typer.Argument(help="Output folder for rgb/ and flow/ JPEGs.")],
    fps: FpsOpt = C.VideoConfig.fps,
    size: Annotated[int, typer.Option(help="Frame width and height.")] = C.VideoConfig.height,
    flow: FlowOpt = C.FlowConfig.algorithm,
    flow_encoding: EncodingOpt = C.FlowConfig.encoding,
    workers: Annotated[int, typer.Option(help="Parallel worker processes.")] = C.ExtractConfig.workers,
    layout: Layout = "auto",
    only_classes: ClassesOpt = None,
    per_class: PerClass = None,
    per_class_seed: PerClassSeed = C.DatasetConfig.per_class_seed,
    strict: Strict = C.DatasetConfig.strict,
    verbose: Verbose = False,
) -> None:
    """Write the seed's image layout: OUT/rgb/<class>/<clip>/frame_0000.jpg and OUT/flow/....

    One manifest line per clip (ok, or failed with the reason); a rerun skips finished clips.
    """
    from afgen.extraction.frames import write_frames

    _setup_logging(verbose)
    dataset = _dataset(clips, layout, only_classes, per_class, strict, per_class_seed)
    summary = write_frames(
        dataset, out, C.VideoConfig(fps=fps, height=size, width=size),
        C.FlowConfig(algorithm=flow, encoding=flow_encoding), workers=workers)
    console.print(f"{summary.done} done, {summary.skipped} already done, {summary.failed} failed; "
                  f"manifest: {summary.manifest}")


@app.command()
def extract(
    clips: ClipsArg,
    features: Annotated[Path, typer.Argument(help="Feature store folder to write (or resume).")],
    fps: FpsOpt = C.VideoConfig.fps,
    size: Annotated[int, typer.Option(help="Image size fed to the backbone.")] = C.VideoConfig.height,
    flow: FlowOpt = C.FlowConfig.algorithm,
    flow_encoding: EncodingOpt = C.FlowConfig.encoding,
    dis_preset: Annotated[str, typer.Option(help="--flow dis: OpenCV's preset, medium, fast or ultrafast (about 8.5, 2 and 0.8 ms per 224-px pair on one core here; Farneback 17).")] = C.FlowConfig.dis_preset,
    backbone: Annotated[str, typer.Option(help="torchvision model (resnet50, resnet18, efficientnet_b0, ...) or timm:NAME (e.g. timm:resnet50.a1_in1k, timm:convnext_tiny; needs `pip install \"afgen[extractors]\"`), fed with its own preprocessing.")] = C.ExtractConfig.backbone,
    weights: Annotated[str, typer.Option(help="imagenet (torchvision's weights API, or timm's pretrained weights), none (random), or a state-dict PATH.")] = C.ExtractConfig.weights,
    flow_weights: Annotated[str, typer.Option(help="--flow raft*: default (torchvision's weights API), none (random, tests only) or a state-dict PATH.")] = C.ExtractConfig.flow_weights,
    audio: Annotated[str, typer.Option(help="Audio feature (the regression target): logmel (log-mel statistics, 128-d), vggish (pretrained VGGish embedding, 128-d per 0.96 s) or ast (AudioSet-pretrained Audio Spectrogram Transformer, 768-d; slow on CPU); the last two need `pip install \"afgen[extractors]\"`.")] = C.ExtractConfig.audio,
    audio_weights: Annotated[str, typer.Option(help="--audio vggish|ast: default (the library's cache, or a download), none (random, tests only), a state-dict PATH, or (ast) a folder saved with save_pretrained.")] = C.AudioFeatureConfig.weights,
    workers: Annotated[int, typer.Option(help="Decode/flow worker processes (0: in this process).")] = C.ExtractConfig.workers,
    batch_size: Annotated[int | None, typer.Option(help=f"Images per backbone batch (default {C.ExtractConfig.cpu_batch_size} on a CPU, {C.ExtractConfig.cuda_batch_size} on a GPU).")] = C.ExtractConfig.batch_size,
    precision: Annotated[str, typer.Option(help="fp32, bf16 or auto (bf16 where supported).")] = C.ExtractConfig.precision,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = C.ExtractConfig.device,
    runtime: Annotated[str, typer.Option(help="Backbone runtime: torch, onnxruntime (CPU, fp32; 1.5-1.7x faster than torch on the CPUs measured, features within cosine 1e-6) or auto (onnxruntime for fp32 on a CPU; a resumed store keeps its own).")] = C.ExtractConfig.runtime,
    dtype: Annotated[str, typer.Option(help="On-disk dtype of visual features: float16 or float32.")] = C.ExtractConfig.dtype,
    limit: Annotated[int | None, typer.Option(help="Extract only the first N clips.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start the store afresh if its settings differ.")] = False,
    engine: Annotated[str, typer.Option(help="local: producer processes on this machine. ray: Ray Data, on a local Ray instance or the cluster at --ray-address (needs `pip install \"afgen[ray]\"`).")] = C.ExtractConfig.engine,
    ray_address: Annotated[str | None, typer.Option(help="--engine ray: `auto` or HOST:PORT of a running cluster (`ray start --head`); default: start a local Ray instance.")] = C.ExtractConfig.ray_address,
    ray_actors: Annotated[int | None, typer.Option(help="--engine ray: backbone actors (default: one per GPU, or one without GPUs).")] = C.ExtractConfig.ray_actors,
    ray_producers: Annotated[int | None, typer.Option(help="--engine ray: decode/flow/audio tasks at a time (default: the cluster's CPUs the actors leave).")] = C.ExtractConfig.ray_producers,
    shard: Annotated[str | None, typer.Option(help="I/N: extract only shard I of N (a hash of the clip id, the same on every machine), so N processes or a job array fill one store side by side.")] = None,
    layout: Layout = "auto",
    only_classes: ClassesOpt = None,
    per_class: PerClass = None,
    per_class_seed: PerClassSeed = C.DatasetConfig.per_class_seed,
    strict: Strict = C.DatasetConfig.strict,
    verbose: Verbose = False,
) -> None:
    """Extract v_R [t,D], v_F [t-1,D] and the audio feature of every clip into a feature store.

    Resumable: a rerun skips finished clips; a failed clip is recorded and the batch goes on.
    One writer per store (or per --shard): a second run on the same clips is refused.
    """
    from afgen.extraction.extract import extract as run_extract
    from afgen.extraction.extract import parse_shard

    _setup_logging(verbose)
    dataset = _dataset(clips, layout, only_classes, per_class, strict, per_class_seed)
    cfg = C.ExtractConfig(backbone=backbone, weights=weights, audio=audio, workers=workers,
                          batch_size=batch_size, precision=precision, device=device, dtype=dtype,
                          runtime=runtime, limit=limit, engine=engine, ray_address=ray_address, ray_actors=ray_actors, flow_weights=flow_weights,
                          ray_producers=ray_producers)
    s = run_extract(dataset, features, cfg, C.VideoConfig(fps=fps, height=size, width=size),
                    C.FlowConfig(algorithm=flow, encoding=flow_encoding, dis_preset=dis_preset),
                    C.AudioFeatureConfig(encoder=audio, weights=audio_weights), overwrite=overwrite, shard=parse_shard(shard))
    rate = s.images / s.seconds if s.seconds else 0.0
    console.print(f"{s.done} extracted, {s.skipped} already done, {s.failed} failed in "
                  f"{s.seconds:.1f} s ({rate:.1f} images/s); store: {s.store}")
    if s.bottleneck():
        console.print(f"[yellow]note:[/] {s.bottleneck()}")


@app.command()
def export(
    features: Annotated[Path, typer.Argument(help="Feature store folder.")],
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    format: Annotated[str, typer.Option("--format", help="seed: <id>_rgb/_flow/_combined.npy per class.")] = "seed",
    verbose: Verbose = False,
) -> None:
    """Write a feature store in the seed's file naming (v_R, v_F and v_C per clip)."""
    from afgen.seed_export import export as run_export

    _setup_logging(verbose)
    console.print(f"exported {run_export(features, out, format)} clips to {out}")


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
    class_balance: Annotated[str, typer.Option(help="weighted_loss, sampler or none.")] = C.TrainConfig.class_balance,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs.")] = C.TrainConfig.patience,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same metrics on the same machine).")] = C.TrainConfig.seed,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2: one independent run per seed in RUN/seed-<s>/ (same clips and splits); `afgen evaluate RUN` then reports every seed and their spread.")] = None,
    oof_folds: Annotated[int, typer.Option(help="Folds of the out-of-fold generated audio the classifiers train on (< 2: the generator's own, optimistic output).")] = C.TrainConfig.oof_folds,
    seed_workers: Annotated[int, typer.Option(help="With --seeds: train this many seeds at once, one process each (faster on CPU).")] = C.TrainConfig.seed_workers,
    devices: Annotated[str, typer.Option(help="Lightning devices (auto, 1, 2, ...): with more than one, every stage trains data-parallel (see --strategy).")] = C.TrainConfig.devices,
    accelerator: Annotated[str, typer.Option(help="Lightning accelerator: auto, cpu or gpu.")] = C.TrainConfig.accelerator,
    strategy: Annotated[str, typer.Option(help="Lightning strategy: auto, or ddp for several devices (one process per device; CPU processes talk over gloo). The command reruns itself once per extra device.")] = C.TrainConfig.strategy,
    resume: Annotated[bool, typer.Option(help="Resume each stage from its last checkpoint.")] = False,
    verbose: Verbose = False,
) -> None:
    """Train every model the evaluation table needs: the LSTM generator (CE + λ·MSE; chosen on
    that objective) and its λ = 0 ablation, out-of-fold generators, then the audio-visual
    classifiers (real audio; modality dropout with zeros, a learned token or generated audio).
    """
    from afgen.learning.train import train

    _setup_logging(verbose)
    cfg = C.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, lambda_reg=lambda_reg, hidden=hidden,
                        layers=layers, dropout=dropout, modality_dropout=modality_dropout,
                        class_balance=class_balance, patience=patience, seed=seed, oof_folds=oof_folds, seed_workers=seed_workers,
                        devices=devices, accelerator=accelerator, strategy=strategy)
    result = train(features, run, cfg, resume=resume, seeds=_ints(seeds, "--seeds") if seeds else None)
    from afgen.learning.fit import is_rank_zero

    if not is_rank_zero():
        return
    _print_train_metrics(result.metrics)
    console.print(f"run: {result.run} ({result.seconds:.0f} s); curves: {run}/*/learning_curve.png")


def _print_train_metrics(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title="validation (mean over seeds when there are several)")
    for col in ("stage", "top-1", "top-5", "generated-vs-real cosine (centred)"):
        table.add_column(col)
    for stage, m in metrics.items():
        cos = m.get("val_cos_centered")
        table.add_row(stage, f"{100 * m['val_acc']:.1f}", f"{100 * m['val_top5']:.1f}",
                      f"{cos:.3f}" if cos is not None else "")
    console.print(table)


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise AfgenError(f"{option} takes comma-separated integers, e.g. 0,1,2; got {text!r}") from None


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise AfgenError(f"--missing-rates takes comma-separated fractions, got {text!r}") from None
    if not all(0 <= r <= 1 for r in rates):
        raise AfgenError(f"missing rates must be within [0, 1], got {text!r}")
    return rates


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by `afgen train`.")],
    features: Annotated[Path | None, typer.Option(help="Feature store (default: the one the run trained on).")] = None,
    split: Annotated[str, typer.Option(help="Split to score.")] = C.EvalConfig.split,
    missing_rates: Annotated[str, typer.Option(help="Comma-separated missing-audio rates.")] = ",".join(f"{r:g}" for r in C.EvalConfig.missing_rates),
    seed: Annotated[int, typer.Option(help="Seed of the missing-audio masks and of the bootstrap.")] = C.EvalConfig.seed,
    mask_draws: Annotated[int, typer.Option(help="Random missing-audio masks per rate; each cell averages over them.")] = C.EvalConfig.mask_draws,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = C.EvalConfig.bootstrap,
    verbose: Verbose = False,
) -> None:
    """The missing-audio protocol: every method at every missing rate, on the same masks.

    Each accuracy comes with a 95% bootstrap interval (over test clips, mask draws and seeds);
    each method is compared, paired, with the paper's method and with visual-only, and the
    verdicts (better / worse / no resolvable difference) are what a conclusion may quote.
    """
    from afgen.learning.evaluate import evaluate

    _setup_logging(verbose)
    if mask_draws < 1 or bootstrap < 100:
        raise AfgenError("--mask-draws must be at least 1 and --bootstrap at least 100")
    result = evaluate(run, features, C.EvalConfig(split=split, missing_rates=_rates(missing_rates), seed=seed,
                                                  mask_draws=mask_draws, bootstrap=bootstrap))
    console.print(result.table, soft_wrap=True)
    console.print(f"tables and plots: {result.out}")


@app.command("predict")
def predict_cmd(
    clip: Annotated[Path, typer.Argument(help="A video clip (with or without an audio track).")],
    run: Annotated[Path | None, typer.Option(help="Run folder written by `afgen train`.")] = None,
    onnx: Annotated[Path | None, typer.Option(help="Instead of --run: a folder from `afgen export-model RUN OUT` (ONNX files, run with onnxruntime).")] = None,
    top: Annotated[int, typer.Option(help="How many actions to list.")] = C.PredictConfig.top,
    weights: Annotated[str | None, typer.Option(help="Backbone weights, if not those the run's features used.")] = None,
    save_audio_feature: Annotated[Path | None, typer.Option(help="Save the audio feature used (generated if missing) as .npy.")] = None,
    verbose: Verbose = False,
) -> None:
    """Top-k actions for one clip; generated audio stands in when the clip has none."""
    from rich.table import Table

    from afgen.learning.predict import predict

    _setup_logging(verbose)
    p = predict(clip, run, top=top, weights=weights, save_audio_feature=save_audio_feature, onnx=onnx)
    table = Table(title=f"{clip.name}: {p.t} frames at the run's fps")
    table.add_column("rank")
    table.add_column("action")
    table.add_column("probability", justify="right")
    for i, (name, prob) in enumerate(p.top, start=1):
        table.add_row(str(i), name, f"{prob:.3f}")
    console.print(table)
    if p.had_audio:
        console.print("audio: the clip has an audio track; its real audio feature was used")
    else:
        console.print("audio: [bold]missing[/] — the generated audio feature was used in its place")
    console.print(f"visual only: {p.visual_top[0][0]} ({p.visual_top[0][1]:.3f})")
    if save_audio_feature:
        console.print(f"audio feature saved to {save_audio_feature}")


@app.command("export-model")
def export_model_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder written by `afgen train` (its first seed, for several).")],
    out: Annotated[Path, typer.Argument(help="Output folder for the exported files and export.json.")],
    format: Annotated[str, typer.Option("--format", help="onnx (run with onnxruntime, any language) or torchscript.")] = "onnx",
    verbose: Verbose = False,
) -> None:
    """Export the generator (v_C -> class logits + generated audio feature) and the
    audio-visual classifier, with dynamic batch and sequence length, checked against PyTorch."""
    from afgen.learning.model_export import export_model

    _setup_logging(verbose)
    result = export_model(run, out, format)
    for path in result.files:
        console.print(f"wrote {path}")
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in result.diff.items())
    console.print(f"difference from PyTorch on a probe batch: {diffs}; inputs, outputs and classes: "
                  f"{result.out}/export.json")


@app.command()
def demo(
    out: Annotated[Path, typer.Argument(help="Folder for the demo's clips, features and run.")] = Path("afgen-demo"),
    workers: Annotated[int, typer.Option(help="Decode/flow worker processes.")] = C.ExtractConfig.workers,
    classes: Annotated[int, typer.Option(help="Synthetic classes.")] = C.DemoConfig.classes,
    clips_per_class: Annotated[int, typer.Option(help="Synthetic clips per class.")] = C.DemoConfig.clips_per_class,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs per stage.")] = C.DemoConfig.epochs,
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = ",".join(map(str, C.DemoConfig.seeds)),
    verbose: Verbose = False,
) -> None:
    """The main job, offline: synth -> extract -> train (3 seeds) -> evaluate, then the table
    with 95% intervals and paired verdicts."""
    from afgen.demo import run_demo

    _setup_logging(verbose)
    cfg = C.DemoConfig(classes=classes, clips_per_class=clips_per_class, epochs=epochs, seeds=_ints(seeds, "--seeds"))
    result = run_demo(out, cfg, workers=workers)
    console.print(f"[bold]backbone weights:[/] {result.weights_note}")
    if result.train_metrics:
        _print_train_metrics(result.train_metrics)
    console.print(result.evaluation.table, soft_wrap=True)
    console.print(f"plots: {result.evaluation.out}/accuracy_vs_missing.png, "
                  f"{result.evaluation.out}/confusion_generated_r1.png")


@app.command("verify")
def verify_cmd(
    path: Annotated[Path, typer.Argument(help="A feature store (from `afgen extract`) or a run folder (from `afgen train`).")],
    repair: Annotated[bool, typer.Option(help="Mark damaged clips for re-extraction and set damaged files aside (never deletes a good file); then rerun `afgen extract` (store) or `afgen train ... --resume` (run).")] = False,
    quick: Annotated[bool, typer.Option(help="Stores: check file headers and sizes only, not that every value is finite.")] = False,
    verbose: Verbose = False,
) -> None:
    """Check every artifact of a store or run against its contract; list what is damaged.

    Exits 1 when anything is damaged (0 after a repair that left nothing for the next run to
    redo but a rerun of extract or train).
    """
    from rich.table import Table

    from afgen.verify import verify

    _setup_logging(verbose)
    report = verify(path, repair=repair, deep=not quick)
    if report.ok:
        console.print(f"[green]ok:[/] {report.kind} {report.root}: {report.checked} artifacts checked, none damaged")
        return
    table = Table(title=f"damaged in {report.kind} {report.root}")
    for col in ("file", "problem", "fix"):
        table.add_column(col, overflow="fold")
    for d in report.damage:
        shown = d.path.relative_to(report.root) if d.path.is_relative_to(report.root) else d.path
        table.add_row(escape(str(shown)), escape(d.problem), escape(d.fix))
    console.print(table)
    console.print(f"{len(report.damage)} damaged of {report.checked} artifacts checked")
    if report.repaired:
        for line in report.repaired:
            console.print(f"[green]repaired:[/] {escape(line)}")
        again = "afgen extract CLIPS " + str(report.root) if report.kind == "store" else f"afgen train FEATURES {report.root} --resume"
        console.print(f"next: `{again}` with the same options redoes exactly what was marked or set aside")
    else:
        console.print(f"repair: `afgen verify {report.root} --repair`")
    raise typer.Exit(1)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of any error (also accepted after the command, or AFGEN_DEBUG=1).")] = False,
) -> None:
    """(--debug is read by `main`, wherever it stands on the command line.)"""


def main(argv: list[str] | None = None) -> None:
    """Entry point: an afgen error is one clear line (exit 2); an unexpected one is a short
    message pointing at --debug (exit 1), or the full traceback with --debug."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("AFGEN_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="afgen")
    except AfgenError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: rerun the same command to resume; finished work is kept")
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the top-level handler: no traceback without --debug
        if debug:
            raise
        rest = " ".join(args)
        err_console.print(f"[bold red]unexpected error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}\n"
                          f"For the full traceback, rerun with --debug: afgen --debug {escape(rest)}", soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
