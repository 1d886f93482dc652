from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from afgen.cli import app
from afgen.learning.predict import predict


def test_predict_on_a_silent_clip_uses_generated_audio(tiny_store, tiny_run, clip_factory, tmp_path):
    silent = clip_factory("silent.mp4", fps=25, seconds=1.5, audio=False)
    out = tmp_path / "gen.npy"
    p = predict(silent, tiny_run, top=2, save_audio_feature=out)
    assert not p.had_audio and p.used_generated_audio
    assert len(p.top) == 2 and abs(sum(prob for _, prob in p.top)) <= 1.0 + 1e-6
    assert np.load(out).shape == (128,)
    result = CliRunner().invoke(app, ["predict", str(silent), "--run", str(tiny_run), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "generated audio feature was used" in result.output


def test_predict_on_a_clip_with_audio_and_a_long_clip(tiny_store, tiny_run, clip_factory):
    loud = clip_factory("long.mp4", fps=25, seconds=20.0, size=48)
    p = predict(loud, tiny_run)
    assert p.had_audio and not p.used_generated_audio
    assert p.t == 120
    assert p.top[0][0] in {"bounce", "roll", "spin"}
