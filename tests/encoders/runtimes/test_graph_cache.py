"""A backbone exported once is read back from the on-disk cache by the next process: no torch
model, no torchvision import, the same features; a damaged or outdated graph is exported again."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
import torch
from conftest import loaded, python_loading

from afgen.config import CACHE_DIR_ENV
from afgen.encoders.backbones import build_backbone
from afgen.encoders.runtimes import graph_cache

pytest.importorskip("onnxruntime")
IMAGES = np.random.default_rng(3).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / graph_cache.GRAPHS


def test_a_cached_graph_builds_without_torch_or_torchvision_and_gives_the_same_features(cache, tmp_path):
    first = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="onnxruntime")
    assert first.model is not None and len(list(cache.glob("*.onnx"))) == 1
    again = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="onnxruntime")
    assert again.model is None and again.identity() == first.identity()
    np.testing.assert_array_equal(again(IMAGES), first(IMAGES))
    child = ("from afgen.encoders.backbones import build_backbone\n"
             "print(build_backbone('resnet18', 'none', 'cpu', 'fp32', 4, runtime='onnxruntime').model is None)")
    done = subprocess.run(python_loading(child, module="torchvision"), capture_output=True, text=True, check=True,
                          env={**os.environ, CACHE_DIR_ENV: str(tmp_path / "cache")})
    assert done.stdout.split() == ["True"] and not loaded(done.stderr, "torchvision")


def test_a_damaged_graph_is_exported_again(cache, caplog):
    build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="onnxruntime")
    graph = next(cache.glob("*.onnx"))
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    rebuilt = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="onnxruntime")
    assert rebuilt.model is not None and "damaged cached graph" in caplog.text
    assert graph_cache.load(graph_cache.graph_key("resnet18", "none")) is not None  # rewritten whole


def test_the_key_follows_the_weights_file_and_timms_version(tmp_path, cache):
    path = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(2)}, path)
    key = graph_cache.graph_key("resnet18", str(path))
    assert key is not None and key == graph_cache.graph_key("resnet18", str(path))
    torch.save({"a": torch.zeros(3)}, path)  # rewritten: another size and time
    assert graph_cache.graph_key("resnet18", str(path)) != key
    assert graph_cache.graph_key("resnet18", "imagenet") == graph_cache.graph_key("resnet18", "default")
    assert '"timm"' in graph_cache.graph_key("timm:resnet18", "none") and '"timm"' not in key
    assert graph_cache.graph_key("resnet18", str(tmp_path / "missing.pt")) is None


def test_torch_runtime_never_reads_the_cache(cache):
    build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="onnxruntime")
    eager = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="torch")
    assert eager.model is not None and eager.runtime == "torch"


def test_openvino_compiles_the_cached_graph_with_its_own_cache(cache):
    pytest.importorskip("openvino")
    first = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="openvino")
    again = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="openvino")
    assert again.model is None and again.exported.path and again.exported.path.endswith(".onnx")
    assert any((cache.parent / "openvino").iterdir())  # OpenVINO's compiled blob, reused by the next process
    np.testing.assert_allclose(again(IMAGES), first(IMAGES), rtol=1e-5, atol=1e-6)


def test_a_backbone_with_its_own_preprocessing_is_cached_with_it(cache):
    """EfficientNet-Lite0 (mean/std 0.5, any input size) comes back from the cache with its own
    preprocessing: the same identity and features, at another image size too (the graph's height
    and width are dynamic); a cached graph without the preprocessing is not used for it."""
    first = build_backbone("efficientnet_lite0", "none", "cpu", "fp32", 4, runtime="onnxruntime")
    again = build_backbone("efficientnet_lite0", "none", "cpu", "fp32", 4, runtime="onnxruntime")
    assert first.model is not None and again.model is None
    assert again.identity() == first.identity() and again.identity()["preprocess"]["mean"] == [0.5] * 3
    np.testing.assert_array_equal(again(IMAGES), first(IMAGES))
    big = np.random.default_rng(4).integers(0, 255, (2, 48, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(again(big), first(big), rtol=1e-5, atol=1e-5)
    key = graph_cache.graph_key("efficientnet_lite0", "none")
    graph, meta = graph_cache.load(key)
    graph_cache.save(key, graph, meta["dim"], meta["weights_id"])  # as an older afgen wrote it: no preprocessing
    assert build_backbone("efficientnet_lite0", "none", "cpu", "fp32", 4, runtime="onnxruntime").model is not None


def test_the_openvino_export_keeps_the_preprocessing_beside_the_graph_too(cache):
    pytest.importorskip("openvino")
    build_backbone("efficientnet_lite0", "none", "cpu", "fp32", 4, runtime="openvino")
    _, meta = graph_cache.load(graph_cache.graph_key("efficientnet_lite0", "none"))
    assert meta["preprocess"]["mean"] == [0.5] * 3 and meta["preprocess"]["std"] == [0.5] * 3
