"""`afgen --version`: afgen's version, torch's and the CUDA version torch was built for."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

import afgen
from afgen.cli import app


def test_version_names_afgen_torch_and_the_cuda_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith(f"afgen {afgen.__version__} ") and f"torch {torch.__version__}" in line
    assert "CUDA 12.4" in line and len(result.output.splitlines()) == 1
    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU-only build
    assert "CPU only" in CliRunner().invoke(app, ["--version"]).output
