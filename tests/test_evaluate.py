from __future__ import annotations

import json

import numpy as np

from afgen.config import EvalConfig
from afgen.evaluate import METHODS, evaluate, missing_mask


def test_table_has_every_method_and_rate(tiny_run):
    rates = (0.0, 0.5, 1.0)
    result = evaluate(tiny_run, cfg=EvalConfig(missing_rates=rates))
    assert set(result.results["rates"]) == {"0", "0.5", "1"}
    for rate in result.results["rates"].values():
        assert set(METHODS) <= set(rate)
        for key in METHODS:
            assert 0.0 <= rate[key]["top1"] <= 1.0 and "mean_class" in rate[key]
    for name in METHODS.values():
        assert name in result.table
    assert "r = 0.5" in result.table
    for f in ("results.json", "results.md", "accuracy_vs_missing.png", "confusion_generated_r1.png"):
        assert (tiny_run / "eval" / f).stat().st_size > 100
    quality = result.results["generated_audio_quality"]
    assert quality["n"] > 0 and np.isfinite(quality["mse_standardized"]["mean"])


def test_zero_filling_at_rate_zero_equals_real_audio(tiny_run):
    r0 = evaluate(tiny_run, cfg=EvalConfig(missing_rates=(0.0, 1.0))).results["rates"]["0"]
    assert r0["av_zero"] == r0["av_real"]
    assert r0["av_generated"] == r0["av_real"]
    assert r0["av_mean"] == r0["av_real"]


def test_same_seed_same_table(tiny_run):
    a = evaluate(tiny_run, cfg=EvalConfig(missing_rates=(0.5,), seed=3)).results
    b = evaluate(tiny_run, cfg=EvalConfig(missing_rates=(0.5,), seed=3)).results
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_missing_masks():
    has = np.array([True] * 8 + [False] * 2)
    a = missing_mask(10, has, 0.5, seed=0)
    assert np.array_equal(a, missing_mask(10, has, 0.5, seed=0))  # one mask per rate, shared by all methods
    assert a[8:].all()  # never-had-audio clips are always missing
    assert missing_mask(10, has, 0.0, 0).sum() == 2
    assert missing_mask(10, has, 1.0, 0).all()
    assert not np.array_equal(a, missing_mask(10, has, 0.5, seed=1))
