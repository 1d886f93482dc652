"""A store and a run written before the package was split into wings (tests/data/premove/,
made by afgen 95d6abb) are read by today's code: the on-disk contracts did not move."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from afgen.config import EvalConfig
from afgen.contracts.openstore import open_store
from afgen.contracts.packed import v_c
from afgen.contracts.store import FeatureStore
from afgen.learning.evaluate import evaluate
from afgen.learning.method_registry import registry
from afgen.learning.run_loader import load_run
from afgen.verify import verify

PREMOVE = Path(__file__).parent.parent / "data" / "premove"


@pytest.fixture()
def premove(tmp_path):
    shutil.copytree(PREMOVE / "features", tmp_path / "features")
    shutil.copytree(PREMOVE / "run", tmp_path / "run")
    return tmp_path


def test_the_old_store_verifies_and_opens(premove):
    report = verify(premove / "features")
    assert report.ok and report.kind == "store" and report.checked > 12
    store = FeatureStore(premove / "features")
    records = store.records("ok")
    assert len(records) == 12
    packed = open_store(premove / "features").packed
    i = packed.ids.index(records[0]["id"])
    np.testing.assert_array_equal(
        packed.v_c(i), v_c(np.asarray(store.load("rgb", records[0]["id"]), np.float32),
                           np.asarray(store.load("flow", records[0]["id"]), np.float32)))


def test_the_old_run_loads_and_evaluates(premove):
    trained = load_run(premove / "run")
    assert trained.classes == json.loads((premove / "run" / "provenance.json").read_text())["classes"]
    assert {"generator", "fusion"} <= set(trained.models)
    result = evaluate(premove / "run", premove / "features", EvalConfig(split="val", bootstrap=100, mask_draws=1))
    assert (premove / "run" / "eval-val" / "results.json").is_file()  # a val evaluation never overwrites the test one
    # every row but those whose stages were added after it was trained
    newer = {"visual_av_head", "visual_distilled", "av_generated_through", "av_frames_generated",
             "av_transformer_token", "av_reconstructed"}
    assert set(result.results["methods"]) == set(registry().methods) - newer
    top1 = result.results["rates"]["1"][registry().paper().key]["top1"]
    assert 0.0 <= top1["low"] <= top1["value"] <= top1["high"] <= 1.0
