from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from afgen.config import ExtractConfig, SynthConfig, VideoConfig
from afgen.encoders.backbones import build_backbone
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract
from afgen.extraction.synth import generate

pytest.importorskip("onnxruntime")
CPU = torch.device("cpu")


def _images(n, size=40, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def _cosine(a, b):
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("name", ["resnet18", "timm:convnext_atto"])
def test_onnxruntime_features_match_torch(name):
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    x = _images(7)
    ort = build_backbone(name, "none", "cpu", "fp32", batch_size=4, runtime="auto")
    eager = build_backbone(name, "none", "cpu", "fp32", batch_size=4, runtime="torch")
    assert ort.runtime == "onnxruntime" and ort.identity()["runtime"] == "onnxruntime"
    assert eager.runtime == "torch" and "runtime" not in eager.identity()  # old stores keep their settings
    a, b = ort(x), eager(x)
    assert a.shape == b.shape == (7, ort.dim)
    assert _cosine(a, b).min() > 0.99999


def test_an_image_gives_the_same_bytes_whatever_its_batch():
    backbone = build_backbone("resnet18", "none", "cpu", "fp32", batch_size=4, runtime="onnxruntime")
    x = _images(6)
    alone = np.concatenate([backbone(x[i:i + 1]) for i in range(6)])
    assert alone.tobytes() == backbone(x).tobytes()  # zero-padded fixed-size batches, as with torch


def test_a_torch_store_resumed_with_auto_keeps_torch(tmp_path):
    listing = generate(tmp_path / "clips", SynthConfig(classes=2, clips_per_class=2, size=32, seconds=1.0),
                       show_progress=False)
    ds = discover(listing)
    base = dict(backbone="resnet18", weights="none", workers=0, batch_size=4, precision="fp32")
    video = VideoConfig(height=32, width=32)
    extract(ds, tmp_path / "f", ExtractConfig(**base, runtime="torch", limit=2), video, show_progress=False)
    resumed = extract(ds, tmp_path / "f", ExtractConfig(**base), video, show_progress=False)  # runtime auto
    assert (resumed.done, resumed.skipped) == (2, 2)
    assert "runtime" not in json.loads((tmp_path / "f" / "config.json").read_text())["settings"]
    fresh = extract(ds, tmp_path / "g", ExtractConfig(**base), video, show_progress=False)
    assert fresh.done == 4 and fresh.runtime_choice and resumed.runtime_choice is None
    chosen = fresh.runtime_choice.split(" ")[0]  # the measured choice, e.g. "onnxruntime fp32: fastest ..."
    assert json.loads((tmp_path / "g" / "config.json").read_text())["settings"].get("runtime", "torch") == chosen
    a = np.load(tmp_path / "f" / "rgb" / f"{ds.clips[0].id}.npy").astype(np.float32)
    b = np.load(tmp_path / "g" / "rgb" / f"{ds.clips[0].id}.npy").astype(np.float32)
    assert _cosine(a, b).min() > 0.9999  # float16 on disk


def test_a_store_resumed_with_auto_keeps_its_precision_on_a_bf16_cpu(tmp_path, monkeypatch):
    """An ONNX Runtime (fp32) store resumed with --runtime auto --precision auto on a CPU where
    auto would mean bf16 keeps fp32, instead of refusing ONNX Runtime in bf16."""
    import afgen.encoders.devices

    listing = generate(tmp_path / "clips", SynthConfig(classes=2, clips_per_class=2, size=32, seconds=1.0),
                       show_progress=False)
    ds = discover(listing)
    base = dict(backbone="resnet18", weights="none", workers=0, batch_size=4)
    video = VideoConfig(height=32, width=32)
    extract(ds, tmp_path / "f", ExtractConfig(**base, runtime="onnxruntime", precision="fp32", limit=2), video,
            show_progress=False)
    monkeypatch.setattr(afgen.encoders.devices, "bf16_supported", lambda device: True)
    resumed = extract(ds, tmp_path / "f", ExtractConfig(**base), video, show_progress=False)  # auto, auto
    assert (resumed.done, resumed.skipped) == (2, 2)
    settings = json.loads((tmp_path / "f" / "config.json").read_text())["settings"]
    assert (settings["runtime"], settings["precision"]) == ("onnxruntime", "fp32")
