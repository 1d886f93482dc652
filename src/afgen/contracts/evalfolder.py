"""An evaluation folder: the contract between `afgen evaluate` (which writes it) and its readers
(`afgen compare`, your own analysis). Where it is (RUN/eval for the test split, RUN/eval-<split>
for another), the files it holds, and results.json read back. Imports neither torch nor numpy,
so reading evaluations (`afgen compare`) starts at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from afgen.errors import RunError

#: The folder `afgen evaluate RUN` writes the test split's evaluation to (another split: eval-<split>).
EVAL_DIR = "eval"
#: Everything the evaluation computed (rates, cells, comparisons, verdicts, settings): what readers read.
RESULTS = "results.json"
#: results.json as the table a person reads (learning/report.py).
TABLE = "results.md"
#: Per-clip correctness (correct@<rate>@<method>) and the masks (missing@<rate>), for your own analysis.
SCORES = "scores.npz"
#: The plots.
RATES_PLOT = "accuracy_vs_missing.png"
FOREST_PLOT = "differences_from_paper.png"
CONFUSION_PLOT = "confusion_generated_r1.png"
#: The key (in results.json) and column every row is also compared with: the best of the
#: visual-reference rows at each rate.
BEST_VISUAL = "best_visual_only"


def eval_folder(run: str | Path, split: str = "test") -> Path:
    """Where `afgen evaluate RUN` writes by default: RUN/eval for the test split, RUN/eval-<split>
    for another, so evaluating two splits never overwrites one with the other."""
    return Path(run) / (EVAL_DIR if split == "test" else f"{EVAL_DIR}-{split}")


def load_results(path: str | Path) -> dict[str, Any]:
    """results.json of an evaluation: `path` is its folder, a run (its RUN/eval/) or the file
    itself. A missing or damaged one is a RunError naming it and the fix."""
    path = Path(path)
    for candidate in (path / RESULTS, eval_folder(path) / RESULTS, path):
        if candidate.is_file():
            try:
                results = json.loads(candidate.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RunError(f"damaged: not valid JSON ({exc}); evaluate the run again with `afgen evaluate RUN`",
                               candidate) from None
            if not isinstance(results, dict) or "rates" not in results:
                raise RunError("not the results.json of an evaluation (no rates); evaluate the run with "
                               "`afgen evaluate RUN`", candidate)
            return results
    raise RunError(f"no {RESULTS} here; evaluate the run first with `afgen evaluate RUN`", path)


__all__ = ["BEST_VISUAL", "CONFUSION_PLOT", "EVAL_DIR", "FOREST_PLOT", "RATES_PLOT", "RESULTS", "SCORES", "TABLE",
           "eval_folder", "load_results"]
