from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from afgen.cli import app
from afgen.config import ExtractConfig, FlowConfig
from afgen.contracts.manifest import Manifest
from afgen.contracts.packed import load_packed
from afgen.learning.predict import predict
from afgen.learning.run_loader import load_run


def test_predict_on_a_silent_clip_uses_generated_audio(tiny_store, tiny_run, clip_factory, tmp_path):
    silent = clip_factory("silent.mp4", fps=25, seconds=1.5, audio=False)
    out = tmp_path / "gen.npy"
    p = predict(silent, tiny_run, top=2, save_audio_feature=out)
    assert not p.had_audio and p.used_generated_audio
    every = predict(silent, tiny_run, top=3)  # all three classes: a distribution, best first
    assert sorted(c for c, _ in every.top) == ["bounce", "roll", "spin"]
    assert sum(prob for _, prob in every.top) == pytest.approx(1.0, abs=1e-5)
    assert [prob for _, prob in every.top] == sorted((prob for _, prob in every.top), reverse=True)
    assert p.top == every.top[:2]
    assert np.load(out).shape == (128,)
    result = CliRunner().invoke(app, ["predict", str(silent), "--run", str(tiny_run), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "generated audio feature was used" in result.output


def test_predict_on_a_clip_with_audio_and_a_long_clip(tiny_store, tiny_run, clip_factory):
    loud = clip_factory("long.mp4", fps=25, seconds=20.0, size=48)
    p = predict(loud, tiny_run)
    assert p.had_audio and not p.used_generated_audio
    assert p.t == 120


def test_predict_on_a_clip_of_the_store_scores_it_as_the_run_scores_its_stored_features(tiny_store, tiny_run):
    """A known answer: the run's own models on the clip's features as the store holds them."""
    packed = load_packed(tiny_store / "features")
    trained = load_run(tiny_run)
    i = next(i for i in range(len(packed)) if packed.audio(i) is not None)
    source = Manifest(tiny_store / "features" / "manifest.jsonl").records()[packed.ids[i]]["source"]
    p = predict(tiny_store / "clips" / source, tiny_run, top=3)
    seq = torch.from_numpy(packed.v_c(i))[None]
    with torch.no_grad():
        logits = trained.fusion(seq, torch.tensor([seq.shape[1]]), torch.from_numpy(packed.audio(i))[None])
    expected = dict(zip(trained.classes, logits.softmax(1)[0].tolist()))
    assert p.had_audio and not p.used_generated_audio
    assert p.top[0][0] == max(expected, key=expected.get)
    for label, prob in p.top:
        assert prob == pytest.approx(expected[label], abs=2e-3), label


def _recording_backbone(monkeypatch) -> list:
    """predict's backbone builder, recording what it is asked for and building it on the CPU."""
    import afgen.learning.predict as predict_module

    built, real = [], predict_module.build_backbone

    def on_cpu(name, weights, device, precision, batch_size, runtime):
        built.append({"device": device, "precision": precision, "runtime": runtime, "batch_size": batch_size})
        return real(name, weights, "cpu", precision, batch_size, runtime)
    monkeypatch.setattr(predict_module, "build_backbone", on_cpu)
    return built


def test_predict_on_a_gpu_machine_runs_an_onnxruntime_store_with_torch(tiny_store, monkeypatch, caplog):
    """Issue 31, finding 1: the store's runtime is a CPU choice; on CUDA predict runs torch (one notice)."""
    from conftest import fake_gpus

    from afgen.config import ExtractConfig
    from afgen.contracts.store import FeatureStore
    from afgen.learning.predict import extraction_for

    store = FeatureStore(tiny_store / "features").config()
    store["settings"] = store["settings"] | {"runtime": "onnxruntime", "precision": "fp32"}
    fake_gpus(monkeypatch, 1)
    built = _recording_backbone(monkeypatch)
    caplog.set_level("INFO")
    for device in ("auto", "cuda", "cuda:0"):
        cfg, backbone, settings, _ = extraction_for(store, None, device)
        assert (cfg.runtime, cfg.precision) == ("torch", "fp32")
    assert built == [{"device": d, "precision": "fp32", "runtime": "torch", "batch_size": ExtractConfig.cuda_batch_size}
                     for d in ("auto", "cuda", "cuda:0")]
    assert sum("onnxruntime is a CPU runtime" in r.getMessage() for r in caplog.records) == 3


def test_predict_on_a_cpu_from_a_gpu_store_uses_the_cpu_batch_and_fp32_without_native_bf16(tiny_store, monkeypatch):
    """Issue 31, finding 6: a GPU store (bf16, batch 128) predicted on a CPU without native bf16 pads
    to the CPU's batch, not 128, and runs fp32 instead of emulating bf16."""
    import afgen.encoders.devices
    from afgen.config import ExtractConfig
    from afgen.contracts.store import FeatureStore
    from afgen.learning.predict import extraction_for

    store = FeatureStore(tiny_store / "features").config()
    store["settings"] = {k: v for k, v in store["settings"].items() if k != "runtime"} | {"precision": "bf16"}  # torch
    store["extract"] = store["extract"] | {"batch_size": 128, "device": "cuda:0"}
    monkeypatch.setattr(afgen.encoders.devices, "bf16_supported", lambda device: False)
    built = _recording_backbone(monkeypatch)
    _, backbone, settings, _ = extraction_for(store, None, "cpu")
    assert built == [{"device": "cpu", "precision": "fp32", "runtime": "torch",
                      "batch_size": ExtractConfig.cpu_batch_size}]
    assert backbone.batch_size == settings.chunk == ExtractConfig.cpu_batch_size


def test_predict_names_the_stores_config_when_its_local_weights_file_is_gone(tiny_store, tmp_path):
    """Issue 28: the weights identity is read back by encoders.weights.spec_for, not by hand."""
    from afgen.contracts.store import FeatureStore
    from afgen.errors import AfgenError
    from afgen.learning.predict import extraction_for

    store = FeatureStore(tiny_store / "features").config()
    store["settings"] = store["settings"] | {"weights": "file:gone.pt:sha256=0123456789abcdef"}
    store["extract"] = store["extract"] | {"weights_arg": str(tmp_path / "gone.pt")}
    with pytest.raises(AfgenError, match=r"FEATURES/config.json: settings.weights is local weights "
                                         r"\(file:gone.pt:sha256=0123456789abcdef\) no longer at .*gone.pt; "
                                         r"pass the same file with --weights PATH"):
        extraction_for(store, None, "cpu", config="FEATURES/config.json")


class _OneAtATime:
    """An engine of one's own (registered in config.ENGINES): each clip in this process."""

    def __init__(self) -> None:
        self.ran = []

    def run(self, todo, job):
        from afgen.extraction.assemble import features_in_process

        self.ran.append([c.id for c in todo])
        for clip in todo:
            yield "done", clip.id, features_in_process(clip.id, clip.path, job.backbone, job.settings, job.raft)


def _pools_started(monkeypatch) -> list:
    """The producer processes the local engine starts (how many each time), started for real."""
    import afgen.extraction.engines.local as local_engine

    started, real = [], local_engine.ProducerPool

    class Recorded(real):
        def __init__(self, settings, workers, *args, **kwargs):
            started.append(workers)
            super().__init__(settings, workers, *args, **kwargs)
    monkeypatch.setattr(local_engine, "ProducerPool", Recorded)
    return started


def test_one_clip_goes_through_the_engine_asked_for(tiny_run, clip_factory, monkeypatch):
    """Issue 28: single-clip predict takes the engines' route (the table and the driver), not its own."""
    import sys

    from afgen import config

    fake = _OneAtATime()
    monkeypatch.setitem(sys.modules, "afgen_test_one_at_a_time", fake)
    monkeypatch.setitem(config.ENGINES, "fake", "afgen_test_one_at_a_time")
    clip = clip_factory("one.mp4", seconds=1.5, size=48)
    through_fake = predict(clip, tiny_run, top=3, engine="fake")
    assert fake.ran == [["clip"]]
    assert through_fake.top == predict(clip, tiny_run, top=3).top  # the local engine, in this process


def test_one_clip_honours_workers_and_refuses_a_shard(tiny_run, clip_factory, monkeypatch):
    """--workers N: one producer process decodes the clip (one clip cannot use more), with the same
    answer as in this process (the default); --shard is refused with the reason, not ignored."""
    clip = clip_factory("one.mp4", seconds=1.5, size=48)
    started = _pools_started(monkeypatch)
    here = predict(clip, tiny_run, top=3)
    assert started == []
    result = CliRunner().invoke(app, ["predict", str(clip), "--run", str(tiny_run), "--top", "3", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert started == [1] and f"{here.top[0][0]}" in result.output
    refused = CliRunner().invoke(app, ["predict", str(clip), "--run", str(tiny_run), "--shard", "0/2"])
    assert refused.exit_code != 0 and "one clip is not split: drop --shard" in str(refused.exception or refused.output)


@pytest.mark.slow
def test_one_clip_on_ray_scores_as_the_local_engine(tiny_run, clip_factory, caplog):
    """`afgen predict ONE_CLIP --engine ray --workers 2` extracts it on Ray (a local instance, as in
    tests/extraction/engines/test_ray_data.py; --workers: its producer tasks) with the same answer."""
    ray = pytest.importorskip("ray")
    clip = clip_factory("one.mp4", seconds=1.5, size=48)
    here = predict(clip, tiny_run, top=3)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    caplog.set_level("INFO", logger="afgen.extraction.engines.ray_data")
    try:
        on_ray = predict(clip, tiny_run, top=3, engine="ray", workers=2)
    finally:
        ray.shutdown()
    assert [name for name, _ in on_ray.top] == [name for name, _ in here.top]
    assert [p for _, p in on_ray.top] == pytest.approx([p for _, p in here.top], abs=1e-4)
    assert on_ray.t == here.t and on_ray.audio == here.audio
    assert "Ray: 1 clips, 2 producer tasks at a time" in caplog.text  # Ray Data ran it, with --workers' tasks


def test_extraction_for_a_raft_store_carries_its_raft_weights_to_the_engine(tiny_store, monkeypatch):
    """Ray's actors build RAFT from the ExtractConfig extraction_for returns: a store extracted with
    random RAFT weights must not be scored with the pretrained ones there."""
    from afgen.contracts.store import FeatureStore
    from afgen.encoders.raft import build_raft
    from afgen.extraction.extract import flow_settings
    from afgen.learning.predict import extraction_for

    store = FeatureStore(tiny_store / "features").config()
    flow = FlowConfig(algorithm="raft_small")
    store["settings"] = store["settings"] | {"flow": flow_settings(flow, build_raft(flow, torch.device("cpu"), "none", 2))}
    built = extraction_for(store, None, "cpu")
    assert built[2].flow.algorithm == "raft_small" and built[3] is not None
    assert built[0].flow_weights == "none"
    # and the engine's job carries them (run_with rebuilds its config from the command's)
    import sys

    from afgen import config
    from afgen.extraction.engines.interface import run_with

    class Recorder:
        def run(self, todo, job):
            self.job = job
            return iter(())

    recorder = Recorder()
    monkeypatch.setitem(sys.modules, "afgen_test_recorder", recorder)
    monkeypatch.setitem(config.ENGINES, "recorder", "afgen_test_recorder")
    list(run_with([], ExtractConfig(engine="recorder"), *built))
    assert recorder.job.cfg.flow_weights == "none"
