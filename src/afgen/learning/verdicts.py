"""The paired comparisons of an evaluation table: every row against the baselines (the paper's
method first) and the best visual-only row, the best row against the runner-up at each rate,
all with simultaneous intervals over the whole family; and the one comparison declared as the
primary question (EvalConfig.primary), with its own interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from afgen.config import EvalConfig
from afgen.errors import AfgenError
from afgen.learning.method_registry import BEST_VISUAL, Method
from afgen.learning.statistics import Bootstrap, verdict


@dataclass(frozen=True)
class Roles:
    """Which of the scored rows play which part (from the methods' flags)."""

    paper: str | None
    baselines: list[str]
    visual: list[str]
    competing: list[str]

    @classmethod
    def of(cls, methods: dict[str, Method]) -> Roles:
        paper = next((k for k, m in methods.items() if m.paper), None)
        others = [k for k, m in methods.items() if m.baseline and k != paper]
        return cls(paper, ([paper] if paper else []) + others,
                   [k for k, m in methods.items() if m.visual_reference],
                   [k for k, m in methods.items() if m.competes])


def add_comparisons(results: dict, scores: dict[tuple[str, str], np.ndarray], methods: dict[str, Method],
                    roles: Roles, boot: Bootstrap, cfg: EvalConfig) -> None:
    """Fill results["comparisons"], ["best"], [BEST_VISUAL], ["multiplicity"] and ["primary"]."""
    pairs: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
    actual: dict[tuple[str, str, str], str] = {}  # the method a column stands for (best visual-only: one of several)
    for rate, cells in results["rates"].items():
        columns = list(roles.baselines)
        if roles.visual:
            best_visual = max(roles.visual, key=lambda k: cells[k]["top1"]["value"])
            results.setdefault(BEST_VISUAL, {})[rate] = best_visual  # which visual-only row the column stands for
            columns.append(BEST_VISUAL)
        for key in methods:
            for base in columns:
                actual[(rate, key, base)] = results[BEST_VISUAL][rate] if base == BEST_VISUAL else base
                pairs[(rate, key, base)] = (scores[(rate, key)], scores[(rate, actual[(rate, key, base)])])
        ranked = sorted(roles.competing, key=lambda k: -cells[k]["top1"]["value"])
        results["best"][rate] = {"method": ranked[0] if ranked else None,
                                 "runner_up": ranked[1] if len(ranked) > 1 else None}
        if len(ranked) > 1:
            pairs[(rate, "best", "runner_up")] = (scores[(rate, ranked[0])], scores[(rate, ranked[1])])
            actual[(rate, "best", "runner_up")] = ranked[1]
    family = boot.family(pairs)
    results["multiplicity"] = {
        # distinct comparisons with any spread (a column that repeats another, or a method
        # against itself, adds nothing to the family)
        "comparisons": len({(rate, frozenset((results["best"][rate]["method"] if key == "best" else key,
                                              actual[(rate, key, base)])))
                            for (rate, key, base), (raw, _) in family.items() if raw.low != raw.high}),
        "correction": (f"simultaneous {100 * cfg.confidence:g}% intervals over every comparison of the table (max-|T| "
                       "bootstrap: the quantile of the largest standardised deviation across the family), so every "
                       "verdict holds together with the others; results.json keeps each comparison's unadjusted "
                       "interval under 'unadjusted'")}
    for (rate, key, base), (raw, adjusted) in family.items():
        entry = {**adjusted.as_dict(), "verdict": verdict(adjusted), "unadjusted": raw.as_dict()}
        if key == "best":
            results["best"][rate] |= {**entry, "resolvable": adjusted.low > 0}
        else:
            results["comparisons"].setdefault(rate, {}).setdefault(key, {})[base] = entry
    if cfg.primary:
        results["primary"] = primary_comparison(cfg.primary, results, scores, methods, roles, boot)


def parse_primary(text: str) -> tuple[str, str | None, str | None]:
    """ROW[:BASELINE][@RATE] -> (row, baseline or None, rate or None)."""
    spec, _, rate = text.partition("@")
    row, _, base = spec.partition(":")
    if not row.strip():
        raise AfgenError(f"--primary {text!r}: give ROW[:BASELINE][@RATE], e.g. my_method:av_generated@1")
    return row.strip(), base.strip() or None, rate.strip() or None


def primary_comparison(text: str, results: dict, scores: dict[tuple[str, str], np.ndarray],
                       methods: dict[str, Method], roles: Roles, boot: Bootstrap) -> dict:
    """The declared primary question: ROW minus BASELINE (default: the paper's method) at RATE
    (default: the highest), with its own (unadjusted) interval: one question, declared before
    looking, pays for no other comparison of the table."""
    row, base, rate = parse_primary(text)
    rates = list(results["rates"])
    if rate is None:
        rate = max(rates, key=float)
    else:
        match = [r for r in rates if abs(float(r) - float(rate)) < 1e-9] if _number(rate) else []
        if not match:
            raise AfgenError(f"--primary {text!r}: rate {rate} is not among the evaluated rates ({', '.join(rates)})")
        rate = match[0]
    base = base or roles.paper
    known = [*methods, BEST_VISUAL] if roles.visual else list(methods)
    for name in (row, base):
        if name not in known:
            raise AfgenError(f"--primary {text!r}: this run has no row {name!r}; its rows: {', '.join(known)}")
    against = results[BEST_VISUAL][rate] if base == BEST_VISUAL else base
    diff = boot.difference(scores[(rate, row)], scores[(rate, against)])
    return {"method": row, "baseline": base, "baseline_method": against, "rate": rate, **diff.as_dict(),
            "verdict": verdict(diff), "confidence": boot.confidence,
            "declared": "the primary comparison, declared with --primary: its own interval, not adjusted for the "
                        "other comparisons of the table"}


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
