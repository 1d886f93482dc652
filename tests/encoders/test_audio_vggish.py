"""VGGish: the package's preprocessing equals the reference definition on a pure tone, shapes
and frame alignment, weights, and a run on 1024-d timm features with 128-d VGGish targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from afgen.config import AudioFeatureConfig
from afgen.encoders.audio import get_encoder
from afgen.encoders.audio_learned import VGGishEncoder
from afgen.errors import AfgenError

pytest.importorskip("torchvggish")
CFG = AudioFeatureConfig(encoder="vggish", weights="none")


def _hz_to_mel(f):
    return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)


def reference_examples(x: np.ndarray, rate: int = 16_000) -> np.ndarray:
    """VGGish's input from its definition (Hershey et al. 2017; the reference mel_features.py):
    25 ms periodic Hann window, 10 ms hop, magnitude spectrum (FFT 512), 64 HTK-mel
    bands 125-7500 Hz (triangles in the mel domain, no normalisation), log(mel + 0.01),
    non-overlapping 96-frame examples."""
    win, hop = 400, 160
    fft = 2 ** int(np.ceil(np.log2(win)))  # 512
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    n = 1 + (len(x) - win) // hop
    frames = np.stack([x[i * hop:i * hop + win] for i in range(n)]) * window
    spectrum = np.abs(np.fft.rfft(frames, fft))  # magnitude, [n, 257]
    bins = np.linspace(0.0, rate / 2, fft // 2 + 1)
    edges = np.linspace(_hz_to_mel(125.0), _hz_to_mel(7500.0), 64 + 2)
    mel_bins = _hz_to_mel(bins)
    weights = np.zeros((fft // 2 + 1, 64))
    for i in range(64):
        lo, mid, hi = edges[i:i + 3]
        weights[:, i] = np.maximum(0.0, np.minimum((mel_bins - lo) / (mid - lo), (hi - mel_bins) / (hi - mid)))
    weights[0, :] = 0.0  # the DC bin is excluded
    logmel = np.log(spectrum @ weights + 0.01)
    k = len(logmel) // 96
    return logmel[:k * 96].reshape(k, 96, 64)


def test_preprocessing_matches_the_reference_on_a_pure_tone():
    rate = 16_000
    t = np.arange(int(2.0 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    got = VGGishEncoder(CFG).examples(tone, rate).numpy()[:, 0]
    want = reference_examples(tone, rate)
    assert got.shape == want.shape == (2, 96, 64)
    np.testing.assert_allclose(got, want, atol=1e-4)
    band = int(np.argmax(want[0].mean(0)))  # the tone's energy sits in the band holding 1 kHz
    edges = np.linspace(_hz_to_mel(125.0), _hz_to_mel(7500.0), 66)
    assert edges[band] <= _hz_to_mel(1000.0) <= edges[band + 2]


def test_shapes_alignment_determinism_and_weights(tmp_path):
    enc = get_encoder("vggish", CFG)
    assert get_encoder("vggish", CFG) is enc  # built once per process
    rate = 16_000
    samples = np.random.default_rng(0).normal(0, 0.1, int(2.5 * rate)).astype(np.float32)
    times = [k / 6 for k in range(15)]
    feats = enc.encode(samples, rate, times, 1 / 6)
    assert feats.clip.shape == (128,) and feats.frames.shape == (15, 128)
    np.testing.assert_array_equal(feats.frames[0], feats.frames[5])  # frames 0..5 lie in example 0
    assert not np.array_equal(feats.frames[0], feats.frames[6])  # frame 6 (1.0 s) is in example 1
    np.testing.assert_array_equal(feats.clip, VGGishEncoder(CFG).encode(samples, rate, times, 1 / 6).clip)
    assert enc.encode(samples[:4000], rate, times[:2], 1 / 6).frames.shape == (2, 128)  # 0.25 s: padded
    # --audio-weights PATH round trip with a state dict the test saves
    state = {k: v + 0.01 for k, v in enc._model.state_dict().items()}
    torch.save(state, tmp_path / "vggish.pt")
    loaded = VGGishEncoder(AudioFeatureConfig(encoder="vggish", weights=str(tmp_path / "vggish.pt")))
    assert loaded.params()["weights"].startswith("file:vggish.pt:sha256=")
    assert not np.allclose(loaded.encode(samples, rate, times, 1 / 6).clip, feats.clip)
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(AfgenError, match="does not fit VGGish"):
        VGGishEncoder(AudioFeatureConfig(encoder="vggish", weights=str(tmp_path / "bad.pt"))).params()


@pytest.mark.slow
def test_run_on_timm_features_and_vggish_targets_trains_evaluates_and_predicts(tmp_path):
    pytest.importorskip("timm")
    from conftest import TINY_SYNTH, TINY_TRAIN

    from afgen.config import EvalConfig, ExtractConfig, SynthConfig, VideoConfig
    from afgen.contracts.packed import load_packed
    from afgen.extraction.dataset import discover
    from afgen.extraction.extract import extract
    from afgen.extraction.synth import generate
    from afgen.learning.evaluate import evaluate
    from afgen.learning.predict import predict
    from afgen.learning.train import train

    listing = generate(tmp_path / "clips", SynthConfig(**TINY_SYNTH), show_progress=False)
    extract(discover(listing), tmp_path / "f",
            ExtractConfig(backbone="timm:resnet18", weights="none", workers=0, batch_size=8, precision="fp32"),
            VideoConfig(height=32, width=32), audio=CFG, show_progress=False)
    packed = load_packed(tmp_path / "f")
    assert packed.visual_dim == 1024 and packed.audio_dim == 128
    train(tmp_path / "f", tmp_path / "run", TINY_TRAIN, show_progress=False)
    result = evaluate(tmp_path / "run", cfg=EvalConfig(mask_draws=2, bootstrap=200))
    assert "av_generated" in result.results["rates"]["1"]
    clip = next((tmp_path / "clips").rglob("*.mp4"))
    p = predict(clip, tmp_path / "run", top=2)
    assert len(p.top) == 2 and p.audio_feature.shape == (128,)
