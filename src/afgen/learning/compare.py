"""`afgen compare`: several evaluations side by side (e.g. two runs, or one run's val and test
splits): each method's top-1 accuracy with its interval at the chosen missing rates. It reads
results.json through contracts/evalfolder.py and imports no torch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from afgen.contracts.evalfolder import EVAL_DIR, load_results
from afgen.errors import AfgenError
from afgen.learning.report import cell


def _name(path: Path) -> str:
    """A short name for an evaluation: RUN, or RUN/eval-val for a folder inside a run."""
    return f"{path.parent.name}/{path.name}" if path.name.startswith(EVAL_DIR) else path.name


def compare(paths: Sequence[str | Path], rates: Sequence[float] = (0.0, 0.5, 1.0),
            methods: Sequence[str] | None = None) -> str:
    """A markdown table: one row per evaluation and method, one column per rate."""
    if not paths:
        raise AfgenError("give at least one run or evaluation folder to compare")
    keys = [f"{r:g}" for r in rates]
    lines = ["Top-1 accuracy (%) with its interval [low, high], by missing-audio rate r", "",
             "| evaluation | split, clips, seeds | method | " + " | ".join(f"r = {k}" for k in keys) + " |",
             "|---|---|---|" + "---:|" * len(keys)]
    for path in map(Path, paths):
        results = load_results(path)
        missing = [k for k in keys if k not in results["rates"]]
        if missing:
            raise AfgenError(f"this evaluation has no rate {', '.join(missing)} (it has "
                             f"{', '.join(results['rates'])}); evaluate with --missing-rates", path)
        wanted = [m for m in results["methods"] if methods is None or m in methods]
        about = f"{results['split']}, {results['n_clips']}, {len(results['seeds'])}"
        for method in wanted:
            cells = [cell(results["rates"][k][method]["top1"]) for k in keys]
            lines.append(f"| {_name(path)} | {about} | {results['methods'][method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
