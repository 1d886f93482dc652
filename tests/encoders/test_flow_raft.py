"""RAFT flow: shapes, encoding, small frames, weight loading (random weights recover no
motion, so no accuracy test), and extraction with --flow raft_small end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from afgen.config import ExtractConfig, FlowConfig, VideoConfig
from afgen.contracts.store import FeatureStore
from afgen.encoders.flows import flow_images
from afgen.encoders.raft import build_raft
from afgen.errors import AfgenError
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract

SMALL = FlowConfig(algorithm="raft_small", raft_iters=2)


def _frames(n=3, size=48, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def test_flow_shapes_encoding_and_small_frames():
    raft = build_raft(SMALL, torch.device("cpu"), "none", batch_size=2)
    frames = _frames(4, size=48)  # below RAFT's 128 px: resized up for the flow and back
    flow = raft.flow(frames[:-1], frames[1:])
    assert flow.shape == (3, 48, 48, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    images = raft.images(frames)
    assert images.shape == (3, 48, 48, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, raft.images(frames))  # deterministic
    assert raft.images(frames[:1]).shape == (0, 48, 48, 3)
    xy = build_raft(FlowConfig(algorithm="raft_small", raft_iters=2, encoding="xy"), torch.device("cpu"), "none")
    assert not np.array_equal(xy.images(frames), images)


def test_weights_round_trip_and_errors(tmp_path):
    raft = build_raft(SMALL, torch.device("cpu"), "none")
    state = {k: v + 0.01 for k, v in raft.model.state_dict().items() if v.is_floating_point()}
    state |= {k: v for k, v in raft.model.state_dict().items() if not v.is_floating_point()}
    torch.save(state, tmp_path / "raft.pt")
    loaded = build_raft(SMALL, torch.device("cpu"), str(tmp_path / "raft.pt"))
    assert loaded.identity()["weights"].startswith("file:raft.pt:sha256=")
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    torch.save({"nope": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(AfgenError, match="does not fit raft_small"):
        build_raft(SMALL, torch.device("cpu"), str(tmp_path / "bad.pt"))
    with pytest.raises(AfgenError, match="runs with the backbone"):
        flow_images(_frames(2), SMALL)  # the OpenCV path (afgen frames) does not take RAFT


def test_extract_with_raft_small(tmp_path, clip_factory):
    clip_factory("data/run/a.mp4", seconds=1.0, size=48)
    clip_factory("data/jump/b.mp4", seconds=1.5, size=48, audio=False)
    cfg = ExtractConfig(backbone="resnet18", weights="none", workers=0, batch_size=4, precision="fp32",
                        flow_weights="none")
    summary = extract(discover(tmp_path / "data"), tmp_path / "f", cfg, VideoConfig(height=32, width=32),
                      FlowConfig(algorithm="raft_small", raft_iters=2), show_progress=False)
    assert summary.done == 2
    store = FeatureStore(tmp_path / "f")
    for cid in ("run__a", "jump__b"):
        t = len(store.load("rgb", cid))
        assert store.load("flow", cid).shape == (t - 1, 512)  # pairs across the producer's chunks too
    settings = store.config()["settings"]["flow"]
    assert settings["algorithm"] == "raft_small" and settings["raft"]["weights"].startswith("random:")
    assert "raft_iters" in settings


def test_opencv_stores_have_no_raft_settings(tmp_path, clip_factory):
    clip_factory("data/run/a.mp4", seconds=1.0, size=48)
    cfg = ExtractConfig(backbone="resnet18", weights="none", workers=0, batch_size=4, precision="fp32")
    extract(discover(tmp_path / "data"), tmp_path / "f", cfg, VideoConfig(height=32, width=32), show_progress=False)
    flow = FeatureStore(tmp_path / "f").config()["settings"]["flow"]
    assert not any(k.startswith("raft") for k in flow)
