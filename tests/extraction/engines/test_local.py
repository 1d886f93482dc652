"""The local engine leaves a library caller's torch as it found it."""

from __future__ import annotations

import os

import torch

from afgen.config import AudioFeatureConfig, ExtractConfig, FlowConfig, VideoConfig
from afgen.encoders.backbones import build_backbone
from afgen.extraction.dataset import Clip
from afgen.extraction.engines.interface import run_with
from afgen.extraction.engines.pool import producer_settings


def test_one_clip_through_the_local_engine_puts_the_callers_torch_threads_back(tmp_path, clip_factory, monkeypatch):
    """Single-clip predict() runs local.run, which sets torch's threads for the backbone (here 4:
    the cores it sees); the caller's count (1) is back when it finishes."""
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    path = clip_factory("c.mp4", seconds=1.0)
    cfg = ExtractConfig(backbone="resnet18", weights="none", workers=0, batch_size=4, precision="fp32",
                        runtime="torch")
    video = VideoConfig(height=32, width=32)
    backbone = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        events = list(run_with([Clip("c", path, None, None, "c.mp4")], cfg, cfg, backbone,
                               producer_settings(cfg, video, FlowConfig(), AudioFeatureConfig())))
        assert [e[0] for e in events] == ["done"]
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
