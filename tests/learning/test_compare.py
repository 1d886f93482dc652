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


def _results(split: str, value: float) -> dict:
    """The part of an evaluation's results.json that `afgen compare` reads."""
    top1 = {"value": value, "low": value - 0.1, "high": value + 0.1}
    return {"split": split, "n_clips": 12, "seeds": [0], "methods": {"av_generated": "AV + generated (paper)"},
            "rates": {r: {"av_generated": {"top1": top1}} for r in ("0", "0.5", "1")}}


def test_afgen_compare_reads_evaluations_without_importing_torch(tmp_path):
    """`afgen compare` only reads results.json (contracts/evalfolder.py): it starts without torch."""
    import json
    import subprocess

    from conftest import afgen_loading, loaded

    from afgen.contracts.evalfolder import RESULTS, eval_folder

    for run, split, value in (("a", "test", 0.5), ("b", "val", 0.75)):
        folder = eval_folder(tmp_path / run, split)
        folder.mkdir(parents=True)
        (folder / RESULTS).write_text(json.dumps(_results(split, value)))
    done = subprocess.run(afgen_loading("compare", tmp_path / "a", tmp_path / "b" / "eval-val"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| a | test, 12, 1 | AV + generated (paper) | 50.0 [40.0, 60.0] |" in done.stdout
    assert "| b/eval-val | val, 12, 1 | AV + generated (paper) | 75.0 [65.0, 85.0] |" in done.stdout
    assert not loaded(done.stderr)
