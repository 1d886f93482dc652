"""Settings are checked where they are defined: the API and the CLI refuse the same bad value
with the same message."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from afgen.cli import app
from afgen.config import EvalConfig, ExtractConfig, FlowConfig, TrainConfig, VideoConfig
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


def test_defaults_are_valid():
    for cls in (EvalConfig, ExtractConfig, FlowConfig, TrainConfig, VideoConfig):
        cls()


def test_the_cli_refuses_with_the_config_message(tmp_path):
    from afgen.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(tmp_path), "--mask-draws", "0"])
    assert exit_.value.code == 2
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--mask-draws", "0"])
    assert "mask_draws (--mask-draws) must be at least 1" in str(result.exception)
