"""`afgen verify`: every artifact of a store or run against its contract, and the repair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from afgen.cli.app import Verbose, app, console, setup_logging


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
