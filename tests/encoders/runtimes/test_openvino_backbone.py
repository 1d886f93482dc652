"""--runtime openvino: the exported graph on OpenVINO gives the eager model's features, the
store records the runtime, and the choice is refused where it cannot run."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from afgen.config import ExtractConfig, SynthConfig, VideoConfig
from afgen.encoders.backbones import build_backbone
from afgen.encoders.runtimes.openvino import supports_bf16
from afgen.encoders.runtimes.resolve import resolve_runtime
from afgen.errors import AfgenError
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract
from afgen.extraction.synth import generate

pytest.importorskip("openvino")


def _cosine(a, b):
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_openvino_features_match_torch_and_survive_pickling():
    x = np.random.default_rng(0).integers(0, 255, (6, 40, 40, 3), dtype=np.uint8)
    ov = build_backbone("resnet18", "none", "cpu", "fp32", batch_size=4, runtime="openvino")
    eager = build_backbone("resnet18", "none", "cpu", "fp32", batch_size=4, runtime="torch")
    assert ov.runtime == "openvino" and ov.identity()["runtime"] == "openvino"
    a, b = ov(x), eager(x)
    assert a.shape == b.shape == (6, 512)
    assert _cosine(a, b).min() > 0.9999
    again = pickle.loads(pickle.dumps(ov.exported))  # as Ray ships it to an actor
    np.testing.assert_allclose(again(np.zeros((1, 3, 40, 40), np.float32)), ov.exported(np.zeros((1, 3, 40, 40), np.float32)))


def test_a_rebuild_to_a_thread_count_used_just_before_reuses_its_compiled_model(monkeypatch):
    """A trial of splits (engines/balance.py) moves the backbone between two thread counts: the
    graph is converted once, each count compiled once (the last two kept)."""
    import openvino as ov

    from afgen.encoders.runtimes.openvino import OpenVinoBackbone

    graph = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="openvino").exported.graph
    converted, threads = [], torch.get_num_threads()
    real = ov.convert_model
    monkeypatch.setattr(ov, "convert_model", lambda *a, **k: converted.append(1) or real(*a, **k))
    try:
        torch.set_num_threads(1)
        ovb = OpenVinoBackbone(graph)  # from the bytes: no cached graph
        one = ovb.compiled
        torch.set_num_threads(2)
        ovb.rebuild()
        two = ovb.compiled
        torch.set_num_threads(1)
        ovb.rebuild()
        assert ovb.compiled is one and ovb.threads == 1 and len(converted) == 1
        torch.set_num_threads(3)
        ovb.rebuild()
        torch.set_num_threads(1)
        ovb.rebuild()
        assert ovb.compiled is one  # 1 used last but one: kept
        torch.set_num_threads(2)
        ovb.rebuild()
        assert ovb.compiled is not two and len(converted) == 1  # 2 was dropped: compiled again
    finally:
        torch.set_num_threads(threads)


def test_openvino_is_refused_where_it_cannot_run():
    with pytest.raises(AfgenError, match="on the CPU"):
        resolve_runtime("openvino", torch.device("cuda"), "fp32")
    if not supports_bf16():
        with pytest.raises(AfgenError, match="no native bf16"):
            resolve_runtime("openvino", torch.device("cpu"), "bf16")
    assert resolve_runtime("auto", torch.device("cpu"), "fp32") != "openvino"  # never chosen implicitly (yet)


@pytest.mark.slow
def test_a_store_extracted_with_openvino_records_it_and_resumes_with_it(tmp_path):
    listing = generate(tmp_path / "clips", SynthConfig(classes=2, clips_per_class=2, size=32, seconds=1.0, workers=1),
                       show_progress=False)
    cfg = ExtractConfig(backbone="resnet18", weights="none", workers=0, precision="fp32", runtime="openvino")
    first = extract(discover(listing), tmp_path / "f", cfg, VideoConfig(height=32, width=32), show_progress=False)
    assert first.done == 4
    settings = json.loads((tmp_path / "f" / "config.json").read_text())["settings"]
    assert settings["runtime"] == "openvino"
    again = extract(discover(listing), tmp_path / "f", ExtractConfig(backbone="resnet18", weights="none", workers=0,
                    precision="fp32"), VideoConfig(height=32, width=32), show_progress=False)
    assert (again.done, again.skipped) == (0, 4)  # `auto` on a resumed store keeps its runtime


def test_two_threads_run_two_streams_and_each_image_keeps_its_place():
    """Beside busy producers a stream per thread keeps going when a core is taken away (see
    OpenVinoBackbone): a batch is split between the streams and put back in order."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        ovb = build_backbone("resnet18", "none", "cpu", "fp32", 4, runtime="openvino").exported
        assert ovb.compiled.get_property("NUM_STREAMS") == 2
        x = np.random.default_rng(1).standard_normal((5, 3, 40, 40)).astype(np.float32)
        alone = np.concatenate([np.asarray(ovb.compiled(x[i:i + 1])[0]) for i in range(5)])
        sent, real = [], ovb._requests.start_async
        ovb._requests = type("Spy", (), {"start_async": lambda self, part, i: sent.append(len(part)) or real(part, i),
                                         "set_callback": lambda self, f: requests.set_callback(f),
                                         "wait_all": lambda self: requests.wait_all()})()
        requests = ovb._by_threads[2][1]
        np.testing.assert_allclose(ovb(x), alone, rtol=1e-5, atol=1e-5)
        assert sent == [3, 2]  # the batch in two, one per stream
        torch.set_num_threads(1)
        ovb.rebuild()
        assert ovb.compiled.get_property("NUM_STREAMS") == 1
        np.testing.assert_allclose(ovb(x), alone, rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(threads)
