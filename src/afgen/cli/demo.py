"""`afgen demo`: every stage, offline, on a synthetic dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from afgen import config as C
from afgen.cli.app import Verbose, app, console, ints, setup_logging
from afgen.cli.learning import print_train_metrics
from afgen.contracts.evalfolder import CONFUSION_PLOT, RATES_PLOT


@app.command()
def demo(
    out: Annotated[Path, typer.Argument(help="Folder for the demo's clips, features and run.")] = Path("afgen-demo"),
    workers: Annotated[int | None, typer.Option(help="Decode/flow worker processes (default: the cores split by measurement).", show_default=False)] = C.ExtractConfig.workers,
    classes: Annotated[int, typer.Option(help="Synthetic classes.")] = C.DemoConfig.classes,
    clips_per_class: Annotated[int, typer.Option(help="Synthetic clips per class.")] = C.DemoConfig.clips_per_class,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs per stage.")] = C.DemoConfig.epochs,
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = ",".join(map(str, C.DemoConfig.seeds)),
    cue: Annotated[Literal[C.CUES], typer.Option(help="none: the classic demo (look-alike pairs, visual ceiling 75%); subtle: the pairs differ by a faint mark (ceiling 100%), where the audio seen in training can help a visual model.")] = C.DemoConfig.cue,
    verbose: Verbose = False,
) -> None:
    """The main job, offline: synth -> extract -> train (3 seeds) -> evaluate, then the table
    with 95% intervals and paired verdicts."""
    from afgen.demo import run_demo

    setup_logging(verbose)
    cfg = C.DemoConfig(classes=classes, clips_per_class=clips_per_class, epochs=epochs, seeds=ints(seeds, "--seeds"), cue=cue)
    result = run_demo(out, cfg, workers=workers)
    console.print(f"[bold]backbone weights:[/] {result.weights_note}")
    if result.train_metrics:
        print_train_metrics(result.train_metrics)
    console.print(result.evaluation.table, soft_wrap=True)
    console.print(f"plots: {result.evaluation.out / RATES_PLOT}, {result.evaluation.out / CONFUSION_PLOT}")
