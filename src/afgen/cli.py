"""The `afgen` command line (Typer). Defaults come from config.py; this module only parses,
calls the API and prints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from afgen import config as C
from afgen.errors import AfgenError

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
ClassesOpt = Annotated[Optional[str], typer.Option(
    "--only-classes", help="Comma-separated class names to keep (e.g. the paper's 10 MiT classes).")]
PerClass = Annotated[Optional[int], typer.Option(help="Keep at most N clips per class.")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "numba", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _dataset(source: Path, layout: str, only_classes: str | None, per_class: int | None):
    from afgen.dataset import discover

    classes = [c.strip() for c in only_classes.split(",")] if only_classes else None
    return discover(source, layout=layout, classes=classes, per_class=per_class)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the clips into.")],
    classes: Annotated[int, typer.Option(help="Number of classes (at most 8).")] = C.SynthConfig.classes,
    clips_per_class: Annotated[int, typer.Option(help="Clips per class.")] = C.SynthConfig.clips_per_class,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical clips.")] = C.SynthConfig.seed,
    missing_audio: Annotated[float, typer.Option(help="Fraction of clips written without an audio stream.")] = C.SynthConfig.missing_audio,
    size: Annotated[int, typer.Option(help="Frame width and height in pixels.")] = C.SynthConfig.size,
    seconds: Annotated[float, typer.Option(help="Clip length in seconds.")] = C.SynthConfig.seconds,
    verbose: Verbose = False,
) -> None:
    """Write the synthetic audio-visual dataset (H.264 + AAC mp4, folder per class, clips.csv).

    Each class is a physical event whose sound follows its motion (impacts click, speed sets
    pitch), so the audio feature can be predicted from the video but not from one frame.
    """
    from afgen.synth import generate

    _setup_logging(verbose)
    cfg = C.SynthConfig(classes=classes, clips_per_class=clips_per_class, seed=seed,
                        missing_audio=missing_audio, size=size, seconds=seconds)
    listing = generate(out, cfg)
    console.print(f"[green]wrote[/] {classes * clips_per_class} clips; list with splits: {listing}")


@app.command()
def frames(
    clips: Annotated[Path, typer.Argument(help="Dataset folder (folder per class or MiT) or CSV list.")],
    out: Annotated[Path, typer.Argument(help="Output folder for rgb/ and flow/ JPEGs.")],
    fps: Annotated[float, typer.Option(help="Frames sampled per second, by timestamp.")] = C.VideoConfig.fps,
    size: Annotated[int, typer.Option(help="Frame width and height.")] = C.VideoConfig.height,
    flow: Annotated[str, typer.Option(help="Flow algorithm: farneback, dis or tvl1.")] = C.FlowConfig.algorithm,
    flow_encoding: Annotated[str, typer.Option(help="Flow image encoding: hsv (seed) or xy (TSN).")] = C.FlowConfig.encoding,
    workers: Annotated[int, typer.Option(help="Parallel worker processes.")] = C.ExtractConfig.workers,
    layout: Layout = "auto",
    only_classes: ClassesOpt = None,
    per_class: PerClass = None,
    verbose: Verbose = False,
) -> None:
    """Write the seed's image layout: OUT/rgb/<class>/<clip>/frame_0000.jpg and OUT/flow/....

    One manifest line per clip (ok, or failed with the reason); a rerun skips finished clips.
    """
    from afgen.frames import write_frames

    _setup_logging(verbose)
    dataset = _dataset(clips, layout, only_classes, per_class)
    summary = write_frames(
        dataset, out, C.VideoConfig(fps=fps, height=size, width=size),
        C.FlowConfig(algorithm=flow, encoding=flow_encoding), workers=workers)
    console.print(f"{summary.done} done, {summary.skipped} already done, {summary.failed} failed; "
                  f"manifest: {summary.manifest}")


def main() -> None:
    """Entry point: run the app and turn afgen errors into one clear line and exit code 2."""
    try:
        app()
    except AfgenError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
