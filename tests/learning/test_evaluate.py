from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from afgen.config import EvalConfig
from afgen.learning.evaluate import evaluate, mask_draws, missing_mask
from afgen.learning.method_registry import registry

METHODS = registry().methods
PAPER = registry().paper().key

FAST = EvalConfig(missing_rates=(0.0, 0.5, 1.0), bootstrap=300, mask_draws=3)


@pytest.fixture(scope="module")
def evaluated(tiny_run):
    return evaluate(tiny_run, cfg=FAST)


def test_table_has_every_method_rate_interval_and_verdict(evaluated, tiny_run):
    results = evaluated.results
    assert set(results["rates"]) == {"0", "0.5", "1"}
    for rate, cells in results["rates"].items():
        for key in METHODS:
            ci = cells[key]["top1"]
            assert 0.0 <= ci["low"] <= ci["value"] <= ci["high"] <= 1.0
            assert "mean_class" in cells[key] and len(cells[key]["per_seed"]) == 1
            assert results["baselines"][0] == PAPER and {"visual_only", "av_md_zero"} <= set(results["baselines"])
            for base in results["baselines"]:
                cmp = results["comparisons"][rate][key][base]
                assert cmp["verdict"] in ("better", "worse", "no resolvable difference")
                assert cmp["low"] <= cmp["value"] <= cmp["high"]
        same = results["comparisons"][rate][PAPER][PAPER]
        assert {k: same[k] for k in ("value", "low", "high", "verdict")} == {
            "value": 0.0, "low": 0.0, "high": 0.0, "verdict": "no resolvable difference"}
        assert same["unadjusted"] == {"value": 0.0, "low": 0.0, "high": 0.0}
        for key in METHODS:  # the adjusted interval holds the unadjusted one
            c = results["comparisons"][rate][key]["best_visual_only"]
            assert c["low"] <= c["unadjusted"]["low"] <= c["value"] <= c["unadjusted"]["high"] <= c["high"]
        assert results["best_visual_only"][rate] in ("visual_only", "visual_av_head")
        assert results["best"][rate]["method"] in METHODS and results["best"][rate]["method"] != "av_real"
    assert results["multiplicity"]["comparisons"] > 0 and "simultaneous" in results["multiplicity"]["correction"]
    # the synthetic store declares its visual ceiling (3 classes, no look-alike pair: 100%)
    assert results["visual_ceiling"] == 1.0 and "Visual ceiling" in evaluated.table
    gap = results["ceiling_gap_closed"]["1"]
    visual = results["rates"]["1"]["visual_only"]["top1"]["value"]
    if visual < 1.0:
        assert gap["visual_only"] == 0.0
    assert (evaluated.out / "differences_from_paper.png").is_file()
    for method in METHODS.values():
        assert method.label in evaluated.table
    assert "r = 0.5" in evaluated.table and "[" in evaluated.table and "Best method" in evaluated.table
    for f in ("results.json", "results.md", "scores.npz", "accuracy_vs_missing.png", "confusion_generated_r1.png"):
        assert (tiny_run / "eval" / f).stat().st_size > 100
    quality = results["generated_audio_quality"]
    assert quality["n"] > 0 and np.isfinite(quality["mse_standardized"]["mean"])


def test_masks_differ_between_draws_and_are_shared_by_methods(evaluated, tiny_run):
    scores = np.load(tiny_run / "eval" / "scores.npz")
    masks = scores["missing@0.5"]
    assert masks.shape[0] == FAST.mask_draws
    assert len({m.tobytes() for m in masks}) > 1  # the draws differ
    real = scores["correct@0.5@av_real"]
    for key in ("av_zero", "av_mean", "av_generated"):  # the same classifier as av_real
        correct = scores[f"correct@0.5@{key}"]
        for d, mask in enumerate(masks):
            # where a draw leaves the audio in place, every method scores what real audio scores:
            # all of them saw that draw's mask, not one of their own
            assert np.array_equal(correct[0, d, ~mask], real[0, d, ~mask])


def test_the_upper_bound_is_real_audio_where_a_track_exists_and_generated_where_none(evaluated, tiny_run):
    scores = np.load(tiny_run / "eval" / "scores.npz")
    never = scores["missing@0"][0]  # at r = 0 only the clips without a track are missing
    assert never.any() and not never.all()  # the tiny store has silent clips
    real = scores["correct@0@av_real"]
    for rate in ("0", "0.5", "1"):  # it does not depend on the rate ...
        assert np.array_equal(scores[f"correct@{rate}@av_real"], real)
    # ... and at r = 0 it sees exactly what the paper's row sees: real audio where a track
    # exists, the generator's audio where none (zero-filled, it would be av_zero's instead)
    assert np.array_equal(real, scores["correct@0@av_generated"])
    assert np.array_equal(real[..., ~never], scores["correct@0@av_zero"][..., ~never])
    assert "without one get" in evaluated.table  # results.md says how it treats those clips


def test_primary_comparison_is_reported_apart_with_its_own_interval(tiny_run, tmp_path):
    result = evaluate(tiny_run, cfg=replace(FAST, primary="av_transformer_token:best_visual_only@0.5"), out=tmp_path)
    p = result.results["primary"]
    assert (p["method"], p["baseline"], p["rate"]) == ("av_transformer_token", "best_visual_only", "0.5")
    assert p["baseline_method"] == result.results["best_visual_only"]["0.5"]
    # its own interval is the family's unadjusted one for the same pair (never the widened one)
    same = result.results["comparisons"]["0.5"]["av_transformer_token"]["best_visual_only"]
    assert {k: p[k] for k in ("value", "low", "high")} == same["unadjusted"]
    assert result.table.startswith("**Declared primary comparison**")
    default = evaluate(tiny_run, cfg=replace(FAST, primary="av_reconstructed"), out=tmp_path / "d").results["primary"]
    assert (default["baseline"], default["rate"]) == (PAPER, "1")  # the paper's method, the highest rate
    from afgen.errors import AfgenError

    with pytest.raises(AfgenError, match="no row 'nope'"):
        evaluate(tiny_run, cfg=replace(FAST, primary="nope@1"), out=tmp_path / "e")
    with pytest.raises(AfgenError, match="rate 0.3 is not among"):
        evaluate(tiny_run, cfg=replace(FAST, primary="av_reconstructed@0.3"), out=tmp_path / "f")


def test_cell_is_the_mean_over_draws(evaluated, tiny_run):
    scores = np.load(tiny_run / "eval" / "scores.npz")
    cell = evaluated.results["rates"]["0.5"]["av_zero"]["top1"]["value"]
    assert cell == pytest.approx(scores["correct@0.5@av_zero"].mean())


def test_same_seed_same_table(tiny_run):
    cfg = replace(FAST, missing_rates=(0.5,), seed=3)
    a = evaluate(tiny_run, cfg=cfg).results
    b = evaluate(tiny_run, cfg=cfg).results
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_missing_masks():
    has = np.array([True] * 8 + [False] * 2)
    a = missing_mask(10, has, 0.5, seed=0)
    assert np.array_equal(a, missing_mask(10, has, 0.5, seed=0))
    assert a[8:].all()  # never-had-audio clips are always missing
    assert missing_mask(10, has, 0.0, 0).sum() == 2
    assert missing_mask(10, has, 1.0, 0).all()
    assert not np.array_equal(a, missing_mask(10, has, 0.5, seed=1))
    draws = mask_draws(has, 0.5, EvalConfig(mask_draws=4))
    assert draws.shape == (4, 10) and len({d.tobytes() for d in draws}) > 1
    assert draws[:, 8:].all() and ((draws.sum(1) >= 5) & (draws.sum(1) <= 7)).all()
