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
    assert "RANDOM weights" in result.output or "ImageNet weights" in result.output
    assert (tmp_path / "demo" / "run" / "eval" / "results.md").is_file()
    assert (tmp_path / "demo" / "run" / "eval" / "accuracy_vs_missing.png").is_file()


def test_help_explains_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("synth", "frames", "extract", "export", "train", "evaluate", "predict", "demo"):
        assert command in result.output


def test_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys):
    from afgen.cli import main

    monkeypatch.setattr("sys.argv", ["afgen", "extract", str(tmp_path / "nowhere"), str(tmp_path / "f")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "no such folder" in capsys.readouterr().err
