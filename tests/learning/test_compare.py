from __future__ import annotations

import pytest

from afgen.cli import main
from afgen.config import EvalConfig
from afgen.errors import AfgenError
from afgen.learning.compare import compare
from afgen.learning.evaluate import evaluate


def test_two_evaluations_side_by_side(tiny_run, tmp_path, capsys):
    fast = EvalConfig(bootstrap=100, mask_draws=1, missing_rates=(0.0, 0.5, 1.0))
    test = evaluate(tiny_run, cfg=fast, out=tmp_path / "test")
    val = evaluate(tiny_run, cfg=EvalConfig(**{**fast.__dict__, "split": "val"}))
    assert val.out == tiny_run / "eval-val" and test.out == tmp_path / "test"
    table = compare([tmp_path / "test", tiny_run / "eval-val"], methods=["visual_only", "av_generated"])
    rows = [line for line in table.splitlines() if line.startswith("| ") and "method" not in line]
    assert len(rows) == 4  # 2 evaluations x 2 methods
    value = test.results["rates"]["1"]["av_generated"]["top1"]
    assert f"{100 * value['value']:.1f} [{100 * value['low']:.1f}, {100 * value['high']:.1f}]" in table
    with pytest.raises(SystemExit):
        main(["compare", str(tmp_path / "test"), str(tiny_run / "eval-val"), "--out", str(tmp_path / "c.md")])
    assert (tmp_path / "c.md").read_text() == compare([tmp_path / "test", tiny_run / "eval-val"])
    with pytest.raises(AfgenError, match="no rate 0.25"):
        compare([tmp_path / "test"], rates=(0.25,))
