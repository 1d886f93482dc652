"""The `afgen` application: the Typer app, shared options, logging and the entry point.
Commands live beside it, one module per wing (extraction.py, learning.py), demo.py and verify.py;
each imports its pipeline inside the command, so `--help` and argument errors stay fast."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from afgen import config as C
from afgen.encoders.registry import AUDIO, FLOWS
from afgen.errors import AfgenError
from afgen.extraction.layouts import LAYOUT_NAMES, LAYOUTS
from afgen.lifecycle import Stopped, die_with_parent, stop_children, stop_handlers

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
    # Plain Click help, not Rich markup: `afgen[extractors]` and `v_R [t,D]` show as written, and
    # long tokens wrap instead of being cut off in narrow columns.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

# Choice types: --help lists the allowed values and a typo is refused before anything loads.
FlowName = Literal[tuple(FLOWS.names())]
AudioName = Literal[tuple(AUDIO.names())]
Encoding = Literal[C.FLOW_ENCODINGS]
DisPreset = Literal[C.DIS_PRESETS]
Precision = Literal[C.PRECISIONS]
Runtime = Literal[C.RUNTIMES]
DType = Literal[C.DTYPES]
Engine = Literal[tuple(C.ENGINES)]
LayoutName = Literal[LAYOUT_NAMES]
Split = Literal[C.SPLITS]
ClassBalance = Literal[C.CLASS_BALANCE]

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")]
Layout = Annotated[LayoutName, typer.Option(help="How CLIPS is read: auto; " + "; ".join(
    f"{name} ({layout.help})" for name, layout in LAYOUTS.items()) + ".")]
ClassesOpt = Annotated[str | None, typer.Option(
    "--only-classes", help="Comma-separated class names to keep (e.g. the paper's 10 MiT classes).")]
PerClass = Annotated[int | None, typer.Option(help="Keep N clips per class in each split: a seeded random choice, the same on every machine (recorded in the store's config.json).")]
PerClassSeed = Annotated[int, typer.Option(help="Seed of --per-class's choice.")]
Strict = Annotated[bool, typer.Option(help="Moments in Time: a CSV row whose class folder is absent is an error (default: skipped, with one warning).")]
# Options shared by `frames`, `extract` and `predict`.
ClipsArg = Annotated[Path, typer.Argument(help="Your videos: a folder (a folder per class gives labels; videos directly in it are unlabelled), a Moments-in-Time folder, or a CSV / list file (`path[,label[,split]]`, absolute paths allowed).")]
FpsOpt = Annotated[float, typer.Option(help="Frames sampled per second, by timestamp.")]
FlowOpt = Annotated[FlowName, typer.Option(help="Flow algorithm: farneback, dis or tvl1 (OpenCV, in the producers); with extract also raft or raft_small (torchvision RAFT, on the backbone's device: slow on CPU, about 0.35 s (raft_small) or 1 s (raft) per 224-px frame pair here).")]
EncodingOpt = Annotated[Encoding, typer.Option(help="Flow image encoding: hsv (the seed's) or xy (TSN's).")]
WorkersOpt = Annotated[int | None, typer.Option(help="Decode/flow/audio producer processes (0: in this process); default: on a CPU, the cores split between them and the backbone by measurement (its speed, their cost per clip), else every core but one.", show_default=False)]
ThreadsOpt = Annotated[int | None, typer.Option(help="The backbone's CPU threads; default: the cores split by measurement, with --workers the cores they leave and one more.", show_default=False)]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda (or cuda:N).")]
EngineOpt = Annotated[Engine, typer.Option(help="local: producer processes on this machine. ray: Ray Data, on a local Ray instance or the cluster at --ray-address (needs `pip install \"afgen[ray]\"`).")]
ShardOpt = Annotated[str | None, typer.Option(help="I/N: only shard I of N (a hash of the clip id, the same on every machine), so N processes or a job array share the work.")]


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "numba", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def ints(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise AfgenError(f"{option} takes comma-separated integers, e.g. 0,1,2; got {text!r}") from None


def rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise AfgenError(f"--missing-rates takes comma-separated fractions, got {text!r}") from None
    if not all(0 <= r <= 1 for r in rates):
        raise AfgenError(f"missing rates must be within [0, 1], got {text!r}")
    return rates


def version_line() -> str:
    """afgen's version with torch's and the CUDA version torch was built with: what a bug report needs."""
    import platform

    import torch

    import afgen

    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
    return f"afgen {afgen.__version__} (torch {torch.__version__}, built for {cuda}; Python {platform.python_version()})"


def _print_version(show: bool) -> None:
    if show:
        console.print(version_line(), markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of any error (also accepted after the command, or AFGEN_DEBUG=1).")] = False,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print afgen's version, torch's and the CUDA version torch was built for, and exit.")] = False,
) -> None:
    """(--debug is read by `main`, wherever it stands on the command line.)"""


def main(argv: list[str] | None = None) -> None:
    """Entry point: an afgen error is one clear line (exit 2); an unexpected one is a short
    message pointing at --debug (exit 1), or the full traceback with --debug."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("AFGEN_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    if os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP rank Lightning started: it ends with rank 0
        die_with_parent()
    try:
        with stop_handlers():
            app(args=args, prog_name="afgen")
    except AfgenError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None
    except Stopped as exc:
        stop_children()  # anything a finally block did not already stop
        how = "rerun the same command with --resume" if args[:1] == ["train"] else "rerun the same command"
        where = f" after {exc.progress}" if exc.progress else ""
        err_console.print(f"[yellow]stopped{where}[/] ({exc}); {how} to continue (finished work is kept)", soft_wrap=True)
        raise SystemExit(exc.status) from None
    except Exception as exc:  # noqa: BLE001 - the top-level handler: no traceback without --debug
        if debug:
            raise
        rest = " ".join(args)
        err_console.print(f"[bold red]unexpected error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}\n"
                          f"For the full traceback, rerun with --debug: afgen --debug {escape(rest)}", soft_wrap=True)
        raise SystemExit(1) from None
