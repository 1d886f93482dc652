"""The demo (every stage, offline) and `afgen verify` (every artifact against its contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

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

    setup_logging(verbose)
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
