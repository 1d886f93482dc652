"""Settings are checked where they are defined: the API and the CLI refuse the same bad value
with the same message."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from afgen.cli import app
from afgen.config import (
    AudioFeatureConfig,
    DatasetConfig,
    DemoConfig,
    EvalConfig,
    ExtractConfig,
    FlowConfig,
    PredictConfig,
    SynthConfig,
    TrainConfig,
    VideoConfig,
    from_dict,
    to_dict,
)
from afgen.errors import AfgenError

BAD = [
    (lambda: EvalConfig(mask_draws=0), "mask_draws (--mask-draws) must be at least 1"),
    (lambda: EvalConfig(bootstrap=10), "bootstrap (--bootstrap) must be at least 100"),
    (lambda: EvalConfig(missing_rates=(0.5, 1.5)), "every missing rate"),
    (lambda: EvalConfig(split="dev"), "split (--split) must be one of train, val, test"),
    (lambda: ExtractConfig(precision="fp16"), "precision (--precision) must be one of auto, fp32, bf16"),
    (lambda: ExtractConfig(runtime="tensorrt"), "runtime (--runtime)"),
    (lambda: ExtractConfig(dtype="int8"), "dtype (--dtype)"),
    (lambda: ExtractConfig(engine="dask"), "engine (--engine) must be one of local, ray"),
    (lambda: ExtractConfig(workers=-1), "workers (--workers) must be at least 0"),
    (lambda: FlowConfig(encoding="rgb"), "encoding (--flow-encoding) must be one of hsv, xy"),
    (lambda: FlowConfig(dis_preset="slow"), "dis_preset (--dis-preset)"),
    (lambda: TrainConfig(class_balance="oversample"), "class_balance (--class-balance)"),
    (lambda: TrainConfig(epochs=0), "epochs (--epochs) must be at least 1"),
    (lambda: TrainConfig(lr=0), "lr (--lr) must be above 0"),
    (lambda: TrainConfig(val_fraction=0.6, test_fraction=0.5), "leave clips to train on"),
    (lambda: VideoConfig(fps=0), "fps (--fps) must be above 0"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_settings_are_refused_by_the_config(make, message):
    with pytest.raises(AfgenError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


ALL_CONFIGS = (AudioFeatureConfig, DatasetConfig, DemoConfig, EvalConfig, ExtractConfig, FlowConfig, PredictConfig,
               SynthConfig, TrainConfig, VideoConfig)


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=lambda c: c.__name__)
def test_defaults_are_valid_and_come_back_from_json_unchanged(cls):
    """What config.json, provenance.json and model.pt hold: to_dict, through JSON, then from_dict."""
    default = cls()  # the defaults pass the config's own checks
    stored = json.loads(json.dumps(to_dict(default)))
    assert set(stored) == {f.name for f in dataclasses.fields(cls)}  # every setting is written down
    again = from_dict(cls, stored)
    assert type(again) is cls and again == default


def test_from_dict_takes_stored_values_and_ignores_keys_it_does_not_know():
    stored = {**to_dict(EvalConfig()), "missing_rates": [0.25, 0.75], "mask_draws": 3, "written_by_a_newer_afgen": 1}
    cfg = from_dict(EvalConfig, stored)
    assert cfg.missing_rates == (0.25, 0.75) and cfg.mask_draws == 3
    assert cfg == EvalConfig(missing_rates=(0.25, 0.75), mask_draws=3)
    assert from_dict(EvalConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg  # a non-default round trip
    with pytest.raises(AfgenError, match="mask_draws"):  # and checks them as the constructor does
        from_dict(EvalConfig, {"mask_draws": 0})


def test_the_cli_refuses_with_the_config_message(tmp_path):
    from afgen.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(tmp_path), "--mask-draws", "0"])
    assert exit_.value.code == 2
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--mask-draws", "0"])
    assert "mask_draws (--mask-draws) must be at least 1" in str(result.exception)
