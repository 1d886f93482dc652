"""aisfx: the real checkpoint from the installed package loads under weights_only=True, the
clip and per-frame embeddings have the right shapes and agree, and `afgen extract --audio aisfx`
writes 512-d features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from afgen.config import AudioFeatureConfig
from afgen.contracts.store import FeatureStore
from afgen.errors import AfgenError

pytest.importorskip("aisfx")
from afgen.encoders.audio_aisfx import AISFXEncoder, load_checkpoint  # noqa: E402

RATE = 16_000


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_packaged_checkpoint_loads_safely_and_embeds():
    enc = AISFXEncoder()
    assert enc.weights_id().startswith("package:aisfx==0.1.2:checkpoint.pth:sha256=")
    times = [k / 6 for k in range(21)]
    feats = enc.encode(_tone(3.5), RATE, times, 1 / 6)
    assert feats.clip.shape == (512,) and feats.frames.shape == (21, 512)
    assert np.isfinite(feats.frames).all() and feats.clip.std() > 0
    # a steady tone: every sliding window sees the same sound as the blocks do
    cos = feats.frames @ feats.clip / (np.linalg.norm(feats.frames, axis=1) * np.linalg.norm(feats.clip))
    assert cos.min() > 0.85
    # a different sound is a different embedding; a short clip is one padded block
    other = enc.encode(0.3 * np.random.default_rng(0).standard_normal(RATE).astype(np.float32), RATE, times[:6], 1 / 6)
    assert other.frames.shape == (6, 512)
    assert float(other.clip @ feats.clip / np.linalg.norm(other.clip) / np.linalg.norm(feats.clip)) < 0.95
    random = AISFXEncoder(AudioFeatureConfig(encoder="aisfx", weights="none")).encode(_tone(1.0), RATE, times[:6], 1 / 6)
    assert not np.allclose(random.clip, enc.encode(_tone(1.0), RATE, times[:6], 1 / 6).clip)


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(AfgenError, match="not found"):
        load_checkpoint(tmp_path / "nothing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(AfgenError, match="bad.pth"):
        load_checkpoint(bad)


@pytest.mark.slow
def test_extract_with_aisfx_writes_512d_audio(tmp_path, clip_factory):
    """Through the CLI, as a user runs it: the track is decoded at aisfx's 44.1 kHz."""
    import subprocess

    from conftest import extract_cmd

    clip_factory("data/a/x.mp4", seconds=1.0, audio_rate=44_100)
    result = subprocess.run(extract_cmd(tmp_path / "data", tmp_path / "f") + ["--audio", "aisfx"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    store = FeatureStore(tmp_path / "f")
    (record,) = store.records("ok")
    assert store.load("audio", record["id"]).shape == (512,)
    assert store.load("audio_frames", record["id"]).shape == (6, 512)
    audio = json.loads((tmp_path / "f" / "config.json").read_text())["settings"]["audio"]
    assert audio["name"] == "aisfx" and audio["weights"].startswith("package:aisfx==")
    video = json.loads((tmp_path / "f" / "config.json").read_text())["settings"]["video"]
    assert video["audio_rate"] == 44_100
