from __future__ import annotations

import librosa
import numpy as np
import pytest

from afgen.config import AudioFeatureConfig
from afgen.encoders.audio import available, get_encoder
from afgen.encoders.registry import AUDIO, Encoder
from afgen.errors import AfgenError


@pytest.mark.parametrize("freq", [300.0, 1000.0, 4000.0])
def test_logmel_of_a_pure_tone_peaks_in_the_right_band(freq):
    rate = 16_000
    t = np.arange(rate * 2) / rate
    tone = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    enc = get_encoder("logmel")
    feats = enc.encode(tone, rate, frame_times=[k / 6 for k in range(12)], frame_step=1 / 6)
    assert feats.clip.shape == (128,) and enc.dim == 128
    assert feats.frames.shape == (12, 64)
    centres = librosa.mel_frequencies(n_mels=64 + 2, fmax=rate / 2)[1:-1]
    expected = int(np.argmin(np.abs(centres - freq)))
    assert abs(int(np.argmax(feats.clip[:64])) - expected) <= 1
    assert abs(int(np.argmax(feats.frames[5])) - expected) <= 1


def test_other_rates_are_resampled():
    t = np.arange(44_100) / 44_100
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    a = get_encoder("logmel").encode(tone, 44_100, [0.0], 1.0)
    b = get_encoder("logmel").encode(librosa.resample(tone, orig_sr=44_100, target_sr=16_000), 16_000, [0.0], 1.0)
    np.testing.assert_allclose(a.clip, b.clip, atol=1e-3)


def test_registry():
    class Const:
        name, dim = "const", 3

        def __init__(self, cfg):
            self.cfg = cfg

        def params(self):
            return {"name": self.name, "dim": 3}

        def encode(self, samples, rate, frame_times, frame_step):
            raise NotImplementedError

    AUDIO.register(Encoder("const", Const, 3, "none", "a constant, for this test", learned=False))
    try:
        assert "const" in available()
        assert get_encoder("const", AudioFeatureConfig(encoder="const")).dim == 3
    finally:
        AUDIO.unregister("const")
    assert "const" not in available()
    assert "vggish" in available()
    with pytest.raises(AfgenError, match="unknown audio encoder 'nope'"):
        get_encoder("nope")
