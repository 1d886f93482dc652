"""results.md (learning/report.py) from a hand-made results dict whose numbers are known: each
cell, verdict, best-per-rate line and summary says what the dict holds, in percent."""

from __future__ import annotations

import copy

from afgen.learning.method_registry import BEST_VISUAL
from afgen.learning.report import cell, results_table


def ci(value: float, low: float, high: float, verdict: str | None = None) -> dict:
    return {"value": value, "low": low, "high": high, **({"verdict": verdict} if verdict else {})}


def _rate(paper: float, vis: float) -> dict:
    return {"paper": {"top1": ci(paper, paper - 0.1, paper + 0.1), "top3": 0.95, "mean_class": paper - 0.05,
                      "seed_mean_std": [paper, 0.02], "per_seed": [ci(paper - 0.02, 0.5, 0.9), ci(paper + 0.02, 0.6, 1.0)]},
            "vis": {"top1": ci(vis, vis - 0.1, vis + 0.1), "top3": 0.9, "mean_class": vis,
                    "seed_mean_std": [vis, 0.0], "per_seed": [ci(vis, 0.4, 0.6), ci(vis, 0.4, 0.6)]}}


RESULTS = {
    "split": "test", "n_clips": 40, "n_with_audio": 30, "seeds": [0], "interval": "95% bootstrap",
    "methods": {"paper": "AV + generated (paper)", "vis": "Visual only"},
    "rates": {"0": _rate(0.8, 0.5), "1": _rate(0.6, 0.5)},
    "config": {"top_k": 3}, "generated_audio_quality": {"n": 0},
    "comparisons": {}, "best": {},
}


def _with_comparisons() -> dict:
    results = copy.deepcopy(RESULTS)
    results["paper_method"] = "paper"
    results[BEST_VISUAL] = {"0": "vis", "1": "vis"}
    results["multiplicity"] = {"correction": "Holm (step-down)", "comparisons": 4}
    for rate, (d, verdict) in {"0": (0.3, "better"), "1": (0.1, "no resolvable difference")}.items():
        results["comparisons"][rate] = {
            "paper": {"paper": ci(0.0, 0.0, 0.0, "no resolvable difference"), BEST_VISUAL: ci(d, 0.2, 0.4, verdict)},
            "vis": {"paper": ci(-d, -0.4, -0.2, "worse"), BEST_VISUAL: ci(0.0, 0.0, 0.0, "no resolvable difference")}}
        results["best"][rate] = {"method": "paper", "runner_up": "vis", "resolvable": rate == "0",
                                 "value": d, "low": d - 0.05, "high": d + 0.05}
    return results


def test_a_cell_is_a_percentage_with_its_interval():
    assert cell(ci(0.5, 0.4125, 0.6)) == "50.0 [41.2, 60.0]"


def test_the_accuracy_table_has_one_row_per_method_and_one_column_per_rate():
    table = results_table(RESULTS)
    lines = table.splitlines()
    assert lines[0] == "Missing-audio evaluation on the test split: 40 clips, 30 with real audio; 1 seed(s)."
    assert "| method | r = 0 | r = 1 |" in lines
    assert "| AV + generated (paper) | 80.0 [70.0, 90.0] | 60.0 [50.0, 70.0] |" in lines
    assert "| Visual only | 50.0 [40.0, 60.0] | 50.0 [40.0, 60.0] |" in lines
    assert "paired" not in table.lower() and "Best method" not in table  # no comparisons, no verdicts
    assert table.endswith("\n")


def test_paired_differences_verdicts_and_the_best_method_per_rate():
    table = results_table(_with_comparisons())
    lines = table.splitlines()
    assert "| Visual only | -30.0 worse | -10.0 worse |" in lines  # row minus the paper's, in points
    assert "| AV + generated (paper) | +0.0 [+0.0, +0.0] no resolvable difference | +10.0 [+20.0, +40.0] " \
           "no resolvable difference |" in lines
    assert "| method | vs AV + generated (paper) | vs best visual-only (Visual only) |" in lines
    assert ("- r = 0: **AV + generated (paper)**, 80.0%; resolvably better than Visual only (+30.0 [+25.0, +35.0])"
            in lines)
    assert ("- r = 1: **AV + generated (paper)**, 60.0%; not resolvably better than Visual only "
            "(+10.0 [+5.0, +15.0])") in lines
    assert "Holm" in table and "4 paired comparisons" in table
    assert "| AV + generated (paper) | 60.0 | 95.0 | 55.0 |" in lines  # top-1, top-3, mean per-class at r = 1
    assert "Per seed" not in table  # one seed: no per-seed table


def test_several_seeds_add_a_per_seed_table_and_the_quality_of_the_generated_audio():
    results = _with_comparisons()
    results["seeds"] = [0, 1]
    results["generated_audio_quality"] = {"n": 30, "mse_standardized": {"mean": 0.5, "std": 0.1},
                                          "cosine": {"mean": 0.9}, "cosine_centered": {"mean": 0.4, "std": 0.05},
                                          "over_seeds": {"mse_standardized": [0.5, 0.01], "cosine_centered": [0.4, 0.02]}}
    lines = results_table(results).splitlines()
    assert "| method | seed 0 | seed 1 | mean ± std |" in lines
    assert "| AV + generated (paper) | 58.0 [50.0, 90.0] | 62.0 [60.0, 100.0] | 60.0 ± 2.0 |" in lines
    assert any(line.startswith("Generated vs real audio feature (30 clips with audio, first seed): MSE (standardised; "
                               "1.0 = training mean) 0.500 ± 0.100, cosine 0.900, mean-centred cosine 0.400 ± 0.050")
               for line in lines)
    assert "Over the 2 seeds: MSE 0.500 ± 0.010, mean-centred cosine 0.400 ± 0.020." in lines


def test_a_declared_primary_comparison_comes_first():
    results = _with_comparisons()
    results["primary"] = {"method": "paper", "baseline": BEST_VISUAL, "baseline_method": "vis", "rate": "1",
                          "value": 0.1, "low": 0.02, "high": 0.18, "confidence": 0.95, "verdict": "better"}
    first = results_table(results).splitlines()[0]
    assert first.startswith("**Declared primary comparison** (--primary paper:best_visual_only@1): "
                            "AV + generated (paper) minus best visual-only (Visual only) at r = 1: "
                            "+10.0 [+2.0, +18.0] percentage points [95% interval of this one comparison], better.")
