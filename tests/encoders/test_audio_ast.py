"""AST (transformers): shapes, 0.1-s frame alignment, long clips in 10.24-s windows,
determinism and weights from a saved folder and a state dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from afgen.config import AudioFeatureConfig
from afgen.encoders.audio import get_encoder
from afgen.encoders.audio_learned import ASTEncoder
from afgen.errors import AfgenError

pytest.importorskip("transformers")
CFG = AudioFeatureConfig(encoder="ast", weights="none")


@pytest.fixture(scope="module")
def encoder():
    return get_encoder("ast", CFG)


@pytest.mark.slow
def test_shapes_alignment_and_determinism(encoder):
    rate = 16_000
    samples = np.random.default_rng(0).normal(0, 0.1, int(1.0 * rate)).astype(np.float32)
    times = [k / 6 for k in range(6)]
    feats = encoder.encode(samples, rate, times, 1 / 6)
    assert feats.clip.shape == (768,) and feats.frames.shape == (6, 768)
    assert np.isfinite(feats.clip).all() and not np.array_equal(feats.frames[0], feats.frames[1])
    again = ASTEncoder(CFG).encode(samples, rate, times, 1 / 6)
    np.testing.assert_allclose(again.clip, feats.clip, rtol=1e-5, atol=1e-5)
    assert encoder.params()["dim"] == 768 and encoder.params()["weights"] == "random:seed=0"


@pytest.mark.slow
def test_long_clip_is_encoded_in_windows(encoder):
    rate = 16_000
    samples = np.random.default_rng(1).normal(0, 0.1, int(11.0 * rate)).astype(np.float32)
    times = [0.5, 10.5]
    feats = encoder.encode(samples, rate, times, 1 / 6)
    first = encoder.encode(samples[: int(10.24 * rate)], rate, [0.5], 1 / 6)
    np.testing.assert_allclose(feats.frames[0], first.frames[0], rtol=1e-5, atol=1e-5)  # same window
    assert not np.allclose(feats.clip, first.clip)  # the second window counts in the clip feature


@pytest.mark.slow
def test_weights_from_a_saved_folder_and_a_state_dict(encoder, tmp_path):
    model = encoder._build()
    model.save_pretrained(tmp_path / "ast")
    folder = ASTEncoder(AudioFeatureConfig(encoder="ast", weights=str(tmp_path / "ast")))
    assert folder.params()["weights"].startswith("folder:ast:")
    torch.save({k: v + 0.01 for k, v in model.state_dict().items()}, tmp_path / "ast.pt")
    shifted = ASTEncoder(AudioFeatureConfig(encoder="ast", weights=str(tmp_path / "ast.pt")))
    assert shifted.params()["weights"].startswith("file:ast.pt:sha256=")
    rate = 16_000
    samples = np.random.default_rng(2).normal(0, 0.1, rate).astype(np.float32)
    a = folder.encode(samples, rate, [0.0], 1 / 6).clip
    np.testing.assert_allclose(a, encoder.encode(samples, rate, [0.0], 1 / 6).clip, rtol=1e-5, atol=1e-5)
    assert not np.allclose(shifted.encode(samples, rate, [0.0], 1 / 6).clip, a)
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(AfgenError, match="does not fit AST"):
        ASTEncoder(AudioFeatureConfig(encoder="ast", weights=str(tmp_path / "bad.pt"))).params()
