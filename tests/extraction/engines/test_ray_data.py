"""The Ray engine on a local Ray instance: the local engine's store contract, failures,
interruption and a killed actor."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from afgen.config import ExtractConfig, VideoConfig
from afgen.contracts.store import FeatureStore
from afgen.errors import AfgenError
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract

ray = pytest.importorskip("ray")

LOCAL = ExtractConfig(backbone="resnet18", weights="none", workers=1, batch_size=4, precision="fp32")
RAY = ExtractConfig(backbone="resnet18", weights="none", batch_size=4, precision="fp32", engine="ray",
                    ray_clips_per_call=2)
SMALL = VideoConfig(height=32, width=32)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs) for the module; the engine joins it instead of starting one."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from conftest import write_clip

    root = tmp_path_factory.mktemp("rayclips")
    for k in range(6):
        write_clip(root / f"data/c{k % 2}/v{k}.mp4", seconds=1.0 + 0.2 * k, size=48, audio=k != 2)
    (root / "data/c1/broken.mp4").write_bytes(b"\x00" * 64)
    extract(discover(root / "data"), root / "local", LOCAL, SMALL, show_progress=False)
    return root


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _assert_same_store(store: Path, reference: Path) -> None:
    ours, theirs = FeatureStore(store), FeatureStore(reference)
    status = {cid: r["status"] for cid, r in ours.manifest.records().items()}
    assert status == {cid: r["status"] for cid, r in theirs.manifest.records().items()}
    files = sorted(p.relative_to(reference) for p in reference.rglob("*.npy"))
    assert files == sorted(p.relative_to(store) for p in store.rglob("*.npy"))
    for rel in files:
        a, b = np.load(store / rel), np.load(reference / rel)
        assert a.shape == b.shape and a.dtype == b.dtype, rel
        if rel.parts[0].startswith("audio"):
            np.testing.assert_array_equal(a, b)  # the same producer code: identical
        else:  # the backbone sees other batch compositions and thread counts: equal up to low bits
            assert _cosine(a, b) > 0.9999, rel
    assert not list(store.rglob("*.tmp"))
    lines = [json.loads(line) for line in (store / "manifest.jsonl").read_text().splitlines()]
    ok = [r["id"] for r in lines if r["status"] == "ok"]
    assert len(ok) == len(set(ok))  # no clip written twice


@pytest.mark.slow
def test_ray_engine_matches_the_local_engine_and_records_the_broken_clip(local_ray, clips, tmp_path):
    summary = extract(discover(clips / "data"), tmp_path / "ray", RAY, SMALL, show_progress=False)
    assert (summary.done, summary.failed) == (6, 1)
    record = FeatureStore(tmp_path / "ray").manifest.records()["c1__broken"]
    assert record["status"] == "failed" and "broken.mp4" in record["error"]
    _assert_same_store(tmp_path / "ray", clips / "local")
    assert FeatureStore(tmp_path / "ray").config()["extract"]["engine"] == "ray"
    again = extract(discover(clips / "data"), tmp_path / "ray", RAY, SMALL, show_progress=False)
    assert (again.done, again.skipped) == (0, 6)  # the broken clip is retried, the rest kept


@pytest.mark.slow
def test_ray_engine_resumes_after_an_interrupted_run(local_ray, clips, tmp_path, monkeypatch):
    real, written = FeatureStore.write_clip, []

    def interrupt_after_two(self, clip_id, arrays, record):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(clip_id)
        real(self, clip_id, arrays, record)

    monkeypatch.setattr(FeatureStore, "write_clip", interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        extract(discover(clips / "data"), tmp_path / "ray", RAY, SMALL, show_progress=False)
    monkeypatch.undo()
    summary = extract(discover(clips / "data"), tmp_path / "ray", RAY, SMALL, show_progress=False)
    assert summary.skipped == 2 and summary.done == 4
    _assert_same_store(tmp_path / "ray", clips / "local")


def _actor_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if b"BackboneActor" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the actor process through /proc")
@pytest.mark.slow
def test_killing_the_backbone_actor_mid_run_loses_nothing(local_ray, clips, tmp_path):
    store = tmp_path / "ray"
    outcome: dict = {}

    def work():
        try:
            outcome["summary"] = extract(discover(clips / "data"), store, RAY, SMALL, show_progress=False)
        except AfgenError as exc:  # Ray gave up on the pipeline: the rerun must finish it
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    deadline, killed = time.time() + 120, []
    while time.time() < deadline and not killed and thread.is_alive():
        pids = _actor_pids()
        if pids and (store / "manifest.jsonl").exists():
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed = pids
        time.sleep(0.05)
    thread.join(timeout=300)
    assert killed, "the actor should have been killed while the run was going"
    extract(discover(clips / "data"), store, RAY, SMALL, show_progress=False)
    _assert_same_store(store, clips / "local")


def test_missing_ray_names_the_extra(monkeypatch):
    from afgen.extraction.engines import ray_data

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(AfgenError, match=r'afgen\[ray\]'):
        ray_data.require()


class FakeRay:
    """As much of Ray as placing the actors uses: a cluster with these resources, whose remote
    tasks run here (recording the resources they asked for)."""

    def __init__(self, resources: dict) -> None:
        self.resources, self.asked = resources, []

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict:
        return self.resources

    def remote(self, **resources):
        def wrap(fn):
            class Task:
                def remote(_, *args):
                    self.asked.append(resources)
                    return fn(*args)
            return Task()
        return wrap

    def get(self, value):
        return value


def _fake_gpu_cluster(monkeypatch, gpus: int = 2) -> FakeRay:
    """A Ray cluster with `gpus` GPUs without bf16, seen from a driver whose CPU has bf16."""
    from conftest import fake_gpus

    import afgen.encoders.devices
    from afgen.extraction.engines import ray_data

    fake = FakeRay({"CPU": 8.0, "GPU": float(gpus)})
    monkeypatch.setattr(ray_data, "_ray", lambda: fake)
    fake_gpus(monkeypatch, 1)  # what an actor holding one GPU sees
    monkeypatch.setattr(afgen.encoders.devices, "bf16_supported", lambda device: device.type == "cpu")
    return fake


@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:0", "cuda:1"])
def test_ray_places_every_cuda_form_on_gpus_resolved_on_a_gpu_actor(monkeypatch, device):
    """Issue 31, findings 4 and 5: cuda:N means GPUs to Ray too, and the actors' precision, runtime
    and batch are resolved for a GPU (here without bf16), not on the driver's bf16 CPU."""
    from afgen.extraction.engines import ray_data
    from afgen.extraction.producer import Settings

    fake = _fake_gpu_cluster(monkeypatch)
    cfg = ExtractConfig(backbone="resnet18", weights="none", engine="ray", device=device)
    placement = ray_data.place(cfg, "auto", "auto")
    assert (placement.device, placement.actors, placement.runtime, placement.precision, placement.batch_size) == (
        "cuda", 2, "torch", "fp32", ExtractConfig.cuda_batch_size)
    assert fake.asked == [{"num_gpus": 1, "num_cpus": 1}]  # resolved on a GPU's resources
    backbone = type("B", (), {"name": "resnet18"})()
    kwargs = ray_data.actor_kwargs(placement, backbone, cfg, Settings(SMALL, None, None, 4))
    assert {k: kwargs[k] for k in ("device", "precision", "batch_size", "runtime")} == {
        "device": "cuda", "precision": "fp32", "batch_size": ExtractConfig.cuda_batch_size, "runtime": "torch"}
    # a store made with ONNX Runtime on a CPU (predict, or a resumed store) runs as torch on the GPUs
    stored = ray_data.place(cfg, "onnxruntime", "fp32", stored=True)
    assert (stored.runtime, stored.precision) == ("torch", "fp32") and "CPU runtime" in stored.notice


def test_ray_without_gpus_refuses_every_cuda_form(monkeypatch):
    from afgen.extraction.engines import ray_data

    _fake_gpu_cluster(monkeypatch, gpus=0)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(AfgenError, match=f"--device {device}, but the Ray cluster has no GPUs"):
            ray_data.place(ExtractConfig(engine="ray", device=device))
    assert ray_data.place(ExtractConfig(engine="ray", precision="fp32")).device == "cpu"


def test_a_ray_store_on_gpus_records_the_actors_device_batch_and_precision(monkeypatch, tmp_path):
    """Issue 31, finding 4: config.json says what the actors run (cuda, their batch, their
    precision), not the driver's CPU backbone (cpu, no batch, the CPU's bf16)."""
    from conftest import write_clip

    from afgen.extraction.engines import ray_data

    _fake_gpu_cluster(monkeypatch)
    seen = {}

    def run(todo, job):
        seen["placement"] = job.plan.placement
        return iter(())
    monkeypatch.setattr(ray_data, "run", run)
    write_clip(tmp_path / "data/a/x.mp4", seconds=1.0, size=32)
    cfg = ExtractConfig(backbone="resnet18", weights="none", engine="ray", device="cuda:0")
    extract(discover(tmp_path / "data"), tmp_path / "f", cfg, SMALL, show_progress=False)
    config = FeatureStore(tmp_path / "f").config()
    assert config["extract"]["device"] == "cuda" and config["extract"]["batch_size"] == ExtractConfig.cuda_batch_size
    assert config["settings"]["precision"] == "fp32" and "runtime" not in config["settings"]  # torch
    assert seen["placement"].precision == "fp32" and seen["placement"].batch_size == ExtractConfig.cuda_batch_size
