from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import replace

import numpy as np
import pytest
from conftest import extract_cmd, fake_gpus, lines_held, wait_until_waiting

from afgen.config import ExtractConfig, VideoConfig
from afgen.contracts.packed import load_packed, v_c
from afgen.contracts.store import FeatureStore
from afgen.errors import AfgenError, StoreError
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract

FAST = ExtractConfig(backbone="resnet18", weights="none", workers=0, batch_size=4, precision="fp32")
SMALL = VideoConfig(height=32, width=32)


def _clips(tmp_path, clip_factory, broken=True):
    clip_factory("data/run/a.mp4", fps=25, seconds=1.0)
    clip_factory("data/run/b.mp4", fps=30, seconds=1.5, audio=False)
    clip_factory("data/jump/c.mp4", fps=24, seconds=1.0)
    if broken:
        (tmp_path / "data" / "jump" / "broken.mp4").write_bytes(b"\x00" * 64)
    return discover(tmp_path / "data")


def test_shapes_failures_and_missing_audio(tmp_path, clip_factory):
    ds = _clips(tmp_path, clip_factory)
    summary = extract(ds, tmp_path / "f", FAST, SMALL, show_progress=False)
    assert (summary.done, summary.failed) == (3, 1)
    store = FeatureStore(tmp_path / "f")
    recs = {r["id"]: r for r in store.records(None)}
    assert recs["jump__broken"]["status"] == "failed" and "broken.mp4" in recs["jump__broken"]["error"]
    assert not store.path("rgb", "jump__broken").exists()
    rgb, flow = store.load("rgb", "run__a"), store.load("flow", "run__a")
    assert rgb.shape == (6, 512) and flow.shape == (5, 512) and rgb.dtype == np.float16
    assert store.load("rgb", "run__b").shape == (9, 512)
    combined = v_c(rgb.astype(np.float32), flow.astype(np.float32))
    assert combined.shape == (5, 1024)
    np.testing.assert_array_equal(combined[:, :512], rgb[1:].astype(np.float32))  # first RGB row dropped
    np.testing.assert_array_equal(combined[:, 512:], flow.astype(np.float32))
    # a clip without audio is data: no audio file, has_audio false
    assert recs["run__b"]["has_audio"] is False and recs["run__b"]["status"] == "ok"
    assert not store.path("audio", "run__b").exists()
    assert store.load("audio", "run__a").shape == (128,)
    assert store.load("audio_frames", "run__a").shape == (6, 64)
    config = store.config()
    assert config["settings"]["backbone"] == "resnet18" and config["settings"]["dim"] == 512
    assert "torch" in config["versions"]


def test_rgb_and_flow_features_differ_per_clip(tmp_path, clip_factory):
    ds = _clips(tmp_path, clip_factory, broken=False)
    extract(ds, tmp_path / "f", FAST, SMALL, show_progress=False)
    store = FeatureStore(tmp_path / "f")
    assert not np.allclose(store.load("rgb", "run__a")[:5], store.load("flow", "run__a"))


def test_rerun_skips_and_different_settings_are_refused(tmp_path, clip_factory):
    ds = _clips(tmp_path, clip_factory, broken=False)
    extract(ds, tmp_path / "f", FAST, SMALL, show_progress=False)
    again = extract(ds, tmp_path / "f", FAST, SMALL, show_progress=False)
    assert (again.done, again.skipped) == (0, 3)
    with pytest.raises(StoreError, match="other settings.*--overwrite"):
        extract(ds, tmp_path / "f", FAST, VideoConfig(height=48, width=48), show_progress=False)
    fresh = extract(ds, tmp_path / "f", FAST, VideoConfig(height=48, width=48), overwrite=True, show_progress=False)
    assert fresh.done == 3


def test_worker_processes_give_the_same_features(tmp_path, clip_factory):
    ds = _clips(tmp_path, clip_factory)
    extract(ds, tmp_path / "one", FAST, SMALL, show_progress=False)
    cfg = ExtractConfig(**{**FAST.__dict__, "workers": 2})
    summary = extract(ds, tmp_path / "two", cfg, SMALL, show_progress=False)
    assert (summary.done, summary.failed) == (3, 1)
    for cid in ("run__a", "run__b", "jump__c"):
        for mod in ("rgb", "flow"):
            a = (tmp_path / "one" / mod / f"{cid}.npy").read_bytes()
            assert a == (tmp_path / "two" / mod / f"{cid}.npy").read_bytes()


def test_packed_view_matches_per_clip_files(tmp_path, clip_factory):
    ds = _clips(tmp_path, clip_factory)
    extract(ds, tmp_path / "f", FAST, SMALL, show_progress=False)
    packed = load_packed(tmp_path / "f")
    store = FeatureStore(tmp_path / "f")
    assert sorted(packed.ids) == ["jump__c", "run__a", "run__b"]
    for i, cid in enumerate(packed.ids):
        np.testing.assert_array_equal(packed.v_r(i), store.load("rgb", cid).astype(np.float32))
        np.testing.assert_array_equal(packed.v_f(i), store.load("flow", cid).astype(np.float32))
        audio = packed.audio(i)
        if cid == "run__b":
            assert audio is None
        else:
            np.testing.assert_array_equal(audio, store.load("audio", cid))
    assert isinstance(packed.rgb, np.memmap)


@pytest.mark.slow
def test_kill_and_resume_gives_byte_identical_files(tmp_path, clip_factory):
    for k in range(8):
        clip_factory(f"data/c{k % 2}/v{k}.mp4", fps=25, seconds=2.0, audio=k % 3 != 0)
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(extract_cmd(tmp_path / "data", clean), check=True, capture_output=True)
    subprocess.run(extract_cmd(tmp_path / "data", killed) + ["--limit", "3"], check=True, capture_output=True)
    manifest = killed / "manifest.jsonl"
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in killed.rglob("*.npy")}
    # The kill lands at a known point, whatever the load: the 4th clip's files are written and the
    # run waits (on the manifest's lock, held here) to record it.
    with lines_held(manifest):
        proc = subprocess.Popen(extract_cmd(tmp_path / "data", killed), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until_waiting(manifest, proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert manifest.read_text().count('"ok"') == 3
    assert len(list(killed.rglob("*.npy"))) > len(finished)  # the unrecorded clip's files are there
    subprocess.run(extract_cmd(tmp_path / "data", killed), check=True, capture_output=True)
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sum(r["status"] == "ok" for r in records) == 8  # finished clips were not redone
    assert all((p.stat().st_ino, p.stat().st_mtime_ns) == before for p, before in finished.items())
    files = sorted(p.relative_to(clean) for p in clean.rglob("*.npy"))
    assert len(files) == 8 * 2 + 5 * 2  # rgb, flow for all; audio, audio_frames for 5 with audio
    assert files == sorted(p.relative_to(killed) for p in killed.rglob("*.npy"))
    for rel in files:
        assert (clean / rel).read_bytes() == (killed / rel).read_bytes(), rel
    assert not list(killed.rglob("*.tmp"))


def test_shards_are_disjoint_cover_every_clip_and_are_stable():
    import hashlib

    from afgen.extraction.shards import parse_shard, shard_of

    ids = [f"class{k % 7}__clip_{k:05d}" for k in range(3000)]
    parts = [{cid for cid in ids if shard_of(cid, 3) == i} for i in range(3)]
    assert set().union(*parts) == set(ids) and sum(map(len, parts)) == len(ids)
    assert all(900 < len(p) < 1100 for p in parts)  # a hash spreads clips evenly
    # stable across runs and machines: defined by SHA-1 of the id, not Python's salted hash()
    assert shard_of("jump__a", 4) == int(hashlib.sha1(b"jump__a").hexdigest()[:12], 16) % 4
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(AfgenError):
            parse_shard(bad)


@pytest.mark.slow
def test_concurrent_shards_on_one_store_equal_one_run(tmp_path, clip_factory):
    for k in range(8):
        clip_factory(f"data/c{k % 2}/v{k}.mp4", fps=25, seconds=1.0 + 0.1 * k, audio=k % 3 != 0)
    (tmp_path / "data" / "c1" / "broken.mp4").write_bytes(b"\x00" * 64)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    subprocess.run(extract_cmd(tmp_path / "data", single), check=True, capture_output=True)
    procs = [subprocess.Popen(extract_cmd(tmp_path / "data", sharded) + ["--shard", f"{i}/3"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    lines = [json.loads(line) for line in (sharded / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == sorted({r["id"] for r in lines}) and len(lines) == 9
    a, b = FeatureStore(single).manifest.records(), FeatureStore(sharded).manifest.records()
    assert {k: r["status"] for k, r in a.items()} == {k: r["status"] for k, r in b.items()}
    files = sorted(p.relative_to(single) for p in single.rglob("*.npy"))
    assert files == sorted(p.relative_to(sharded) for p in sharded.rglob("*.npy"))
    for rel in files:
        assert (single / rel).read_bytes() == (sharded / rel).read_bytes(), rel


def test_batch_size_defaults_to_the_device_and_the_summary_times_the_run(tmp_path, clip_factory):
    ds = _clips(tmp_path, clip_factory, broken=False)
    cfg = ExtractConfig(backbone="resnet18", weights="none", workers=1, precision="fp32", device="cpu")
    assert cfg.batch_size is None
    s = extract(ds, tmp_path / "f", cfg, SMALL, show_progress=False)
    assert FeatureStore(tmp_path / "f").config()["extract"]["batch_size"] == ExtractConfig.cpu_batch_size
    assert 0 < s.build_seconds < s.first_clip_seconds <= s.seconds
    assert s.startup_wait_seconds > 0 and s.backbone_seconds > 0 and s.wait_seconds > 0  # the pool books it (test_pool.py)
    assert s.startup_wait_seconds + s.wait_seconds + s.backbone_seconds <= s.seconds - s.build_seconds + 0.5


def test_bottleneck_names_the_producers_only_when_the_backbone_waited():
    from dataclasses import replace

    from afgen.extraction.extract import ExtractSummary

    base = ExtractSummary(done=10, skipped=0, failed=0, seconds=101.0, images=350, store=None, build_seconds=1.0,
                          first_clip_seconds=5.0, wait_seconds=60.0, backbone_seconds=35.0)
    assert "waited 60%" in base.bottleneck() and "--flow dis" in base.bottleneck()
    assert replace(base, wait_seconds=10.0).bottleneck() is None
    assert replace(base, done=0).bottleneck() is None


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_extraction_pins_batches_and_matches_the_cpu(tmp_path, clip_factory):
    import torch

    from afgen.encoders.backbones import build_backbone

    gpu = build_backbone("resnet18", "none", "cuda", "auto", 8)
    cpu = build_backbone("resnet18", "none", "cpu", "fp32", 8, runtime="torch")
    x = np.random.default_rng(0).integers(0, 255, (11, 64, 64, 3), dtype=np.uint8)
    a, b = gpu(x), cpu(x)
    assert gpu.runtime == "torch" and gpu.pinned is not None and gpu.pinned.is_pinned()
    assert gpu.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert (np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min() > 0.99
    ds = _clips(tmp_path, clip_factory, broken=True)
    s = extract(ds, tmp_path / "f", ExtractConfig(backbone="resnet18", weights="none", workers=1, device="cuda"),
                SMALL, show_progress=False)
    assert (s.done, s.failed) == (3, 1)
    config = FeatureStore(tmp_path / "f").config()
    assert config["extract"]["device"].startswith("cuda")
    assert config["extract"]["batch_size"] == ExtractConfig.cuda_batch_size


def test_unlabelled_folder_and_absolute_list_extract_every_readable_clip(tmp_path, clip_factory):
    clip_factory("mine/holiday 1.mp4", seconds=1.0, size=32)
    clip_factory("mine/silent.mp4", seconds=1.0, size=32, audio=False)
    (tmp_path / "mine" / "broken.mp4").write_bytes(b"not a video")
    summary = extract(discover(tmp_path / "mine"), tmp_path / "f1", FAST, SMALL, show_progress=False)
    assert (summary.done, summary.failed) == (2, 1)
    records = FeatureStore(tmp_path / "f1").records("ok")
    assert {r["label"] for r in records} == {None}
    assert {r["has_audio"] for r in records} == {True, False}
    listing = tmp_path / "elsewhere" / "list.txt"
    listing.parent.mkdir()
    listing.write_text("".join(f"{(tmp_path / 'mine' / n).resolve()}\n" for n in ("holiday 1.mp4", "silent.mp4")))
    summary = extract(discover(listing), tmp_path / "f2", FAST, SMALL, show_progress=False)
    assert (summary.done, summary.failed) == (2, 0)
    assert sorted(r["source"] for r in FeatureStore(tmp_path / "f2").records("ok")) == sorted(
        str((tmp_path / "mine" / n).resolve()) for n in ("holiday 1.mp4", "silent.mp4"))


def test_producers_started_early_are_closed_when_extract_fails_before_its_first_clip(tmp_path, clip_factory):
    """The CLI starts the producer processes before torch loads; however extract then ends,
    here refused at once (the output is a file), those processes do not outlive it."""
    from afgen.config import AudioFeatureConfig, FlowConfig
    from afgen.extraction.engines.pool import start_producers

    clip_factory("data/a/x.mp4")
    clip_factory("data/b/y.mp4")
    ds = discover(tmp_path / "data")
    cfg = ExtractConfig(backbone="resnet18", weights="none", workers=2, batch_size=4)
    pool = start_producers(cfg, VideoConfig(height=32, width=32), FlowConfig(), AudioFeatureConfig(), len(ds.clips))
    assert pool is not None and all(p.is_alive() for p in pool.procs.values())
    blocker = tmp_path / "store_is_a_file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="is a file"):
        extract(ds, blocker, cfg, VideoConfig(height=32, width=32), show_progress=False, producers=pool)
    assert not any(p.is_alive() for p in pool.procs.values())


def _fake_gpu(monkeypatch, built: list) -> None:
    """A machine with one CUDA GPU, as torch.cuda answers; the backbone asked for on it is recorded
    and built on the CPU instead (nothing can run on a faked GPU)."""
    import afgen.extraction.extract as extract_module

    fake_gpus(monkeypatch, 1, bf16=True)
    real = extract_module.build_backbone

    def on_cpu(name, weights, device, precision, batch_size, runtime):
        built.append({"device": device, "precision": precision, "runtime": runtime, "batch_size": batch_size})
        return real(name, weights, "cpu", precision, batch_size, runtime)
    monkeypatch.setattr(extract_module, "build_backbone", on_cpu)


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_resuming_an_onnxruntime_store_on_a_cuda_gpu_runs_torch_with_a_notice(tmp_path, clip_factory, monkeypatch,
                                                                             caplog, device):
    """Issue 31, finding 1: a store made with ONNX Runtime on a CPU, resumed with --device cuda and
    --runtime auto, runs its backbone with torch (one notice), keeps the store's settings and says
    on each new clip's manifest line how it ran."""
    pytest.importorskip("onnxruntime")
    ds = _clips(tmp_path, clip_factory, broken=False)
    base = dict(backbone="resnet18", weights="none", workers=0, batch_size=4)
    first = extract(ds, tmp_path / "f", ExtractConfig(**base, runtime="onnxruntime", precision="fp32", limit=1),
                    SMALL, show_progress=False)
    assert first.done == 1
    before = json.loads((tmp_path / "f" / "config.json").read_text())["settings"]
    built: list = []
    _fake_gpu(monkeypatch, built)
    caplog.set_level("INFO")
    resumed = extract(ds, tmp_path / "f", ExtractConfig(**base, device=device), SMALL, show_progress=False)
    assert (resumed.done, resumed.skipped, resumed.failed) == (2, 1, 0)
    assert built == [{"device": device, "precision": "fp32", "runtime": "torch", "batch_size": 4}]
    notices = [r.getMessage() for r in caplog.records if "onnxruntime is a CPU runtime" in r.getMessage()]
    assert len(notices) == 1 and f"on {device} it runs torch fp32" in notices[0]
    assert json.loads((tmp_path / "f" / "config.json").read_text())["settings"] == before  # still one store
    lines = [json.loads(line) for line in (tmp_path / "f" / "manifest.jsonl").read_text().splitlines()]
    assert [line.get("ran_as", {}).get("runtime") for line in lines] == [None, "torch", "torch"]


def test_a_new_store_on_a_cuda_gpu_gets_the_gpu_batch(tmp_path, clip_factory, monkeypatch):
    ds = _clips(tmp_path, clip_factory, broken=False)
    built: list = []
    _fake_gpu(monkeypatch, built)
    cfg = ExtractConfig(backbone="resnet18", weights="none", workers=0, precision="fp32", device="cuda:0", limit=1)
    assert extract(ds, tmp_path / "f", cfg, SMALL, show_progress=False).done == 1
    assert built == [{"device": "cuda:0", "precision": "fp32", "runtime": "auto",
                      "batch_size": ExtractConfig.cuda_batch_size}]
    assert FeatureStore(tmp_path / "f").config()["extract"]["batch_size"] == ExtractConfig.cuda_batch_size


def test_onnxruntime_with_precision_auto_runs_fp32_on_a_bf16_cpu_and_says_so(tmp_path, clip_factory, monkeypatch):
    """Issue 29, point 4: only an explicit --precision bf16 with --runtime onnxruntime is refused."""
    import afgen.encoders.devices

    pytest.importorskip("onnxruntime")
    ds = _clips(tmp_path, clip_factory, broken=False)
    monkeypatch.setattr(afgen.encoders.devices, "bf16_supported", lambda device: True)
    base = dict(backbone="resnet18", weights="none", workers=0, batch_size=4, runtime="onnxruntime", limit=1)
    summary = extract(ds, tmp_path / "f", ExtractConfig(**base), SMALL, show_progress=False)
    assert summary.done == 1 and "fp32, the only precision it runs" in summary.runtime_choice
    settings = FeatureStore(tmp_path / "f").config()["settings"]
    assert (settings["runtime"], settings["precision"]) == ("onnxruntime", "fp32")
    with pytest.raises(AfgenError, match="--runtime onnxruntime runs fp32; pass --precision fp32"):
        extract(ds, tmp_path / "g", ExtractConfig(**base, precision="bf16"), SMALL, show_progress=False)


@pytest.fixture
def four_cores(monkeypatch, tmp_path):
    """A 4-core machine as extract sees it, with an empty cache (no producer cost remembered
    from another test); torch's threads put back afterwards."""
    import os

    import torch

    from afgen.config import CACHE_DIR_ENV

    threads = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    yield
    torch.set_num_threads(threads)


def _stub_backbone_speed(monkeypatch, images_per_s: float) -> None:
    """The cached measurement of the backbone's runtime says `images_per_s` on 4 threads."""
    import afgen.extraction.engines.local as local_engine
    from afgen.encoders.runtime_choice import Trial

    monkeypatch.setattr(local_engine, "measured_speed",
                        lambda *a: Trial("torch", "fp32", images_per_s, 1.0, threads=4))


def _n_clips(tmp_path, clip_factory, n):
    for i in range(n):
        clip_factory(f"data/c/{i}.mp4", seconds=1.0)
    return discover(tmp_path / "data")


@pytest.mark.parametrize("images_per_s,producers,threads", [(1e6, 3, 1), (1.0, 1, 4)])
def test_the_cores_follow_the_backbones_measured_speed(tmp_path, clip_factory, monkeypatch, four_cores,
                                                       images_per_s, producers, threads):
    """Issue 29, point 1: a backbone measured fast leaves the producers the bottleneck, so they
    get more processes (up to one per clip) and it one thread; a slow one gets the threads."""
    import torch

    from afgen.config import AudioFeatureConfig, FlowConfig
    from afgen.extraction.engines.pool import start_producers

    _stub_backbone_speed(monkeypatch, images_per_s)
    ds = _n_clips(tmp_path, clip_factory, 3)
    cfg = replace(FAST, workers=None, runtime="torch")
    pool = start_producers(cfg, SMALL, FlowConfig(), AudioFeatureConfig(), 3)  # as the CLI does: before the split
    summary = extract(ds, tmp_path / "f", cfg, SMALL, show_progress=False, producers=pool)
    assert summary.done == 3
    line = summary.runtime_line()
    assert f"{producers} producer process{'es' if producers > 1 else ''}, {threads} backbone thread" in line
    assert f"{'producers' if producers > 1 else 'backbone'} bound the run" in line
    assert len(pool.procs) == producers and torch.get_num_threads() == threads


def test_the_split_is_rebalanced_when_the_first_clips_measure_the_producers(tmp_path, clip_factory, monkeypatch,
                                                                            four_cores):
    """The prior says the producers cost nothing, so the backbone gets the cores; the first three
    clips measure them, the producers then get them, and the features are those of one process."""
    import afgen.config

    monkeypatch.setattr(afgen.config, "PRODUCER_COST_PRIOR", 1e-12)
    _stub_backbone_speed(monkeypatch, 1e6)
    ds = _n_clips(tmp_path, clip_factory, 6)
    summary = extract(ds, tmp_path / "f", replace(FAST, workers=None, runtime="torch"), SMALL, show_progress=False)
    assert summary.done == 6
    assert "measured on" in summary.split and "re-balanced after 3 clips from 1 + 4" in summary.split
    assert "4 producer processes, 1 backbone thread" in summary.split
    extract(ds, tmp_path / "one", replace(FAST, runtime="torch"), SMALL, show_progress=False)  # in-process
    for cid in [c.id for c in ds.clips]:
        for mod in ("rgb", "flow"):
            assert (tmp_path / "f" / mod / f"{cid}.npy").read_bytes() == (tmp_path / "one" / mod / f"{cid}.npy").read_bytes()


def _fake_wall_clock(monkeypatch, rates: dict) -> list:
    """The balancer local.py makes gets a clock on which each clip the backbone finishes takes
    1 / rates[split] seconds of the split running then; returns the balancers made."""
    import afgen.extraction.engines.local as local_engine
    from afgen.extraction.engines.balance import Balancer

    made, now = [], [0.0]

    def clock() -> float:
        now[0] += 1.0 / rates[(made[-1].split.producers, made[-1].split.threads)]
        return now[0]

    monkeypatch.setattr(local_engine, "Balancer", lambda *a, **k: made.append(Balancer(*a, clock=clock, **k)) or made[-1])
    return made


@pytest.mark.parametrize("rates,won", [({(2, 1): 1.0, (2, 2): 2.0}, (2, 2)),
                                       pytest.param({(2, 1): 2.0, (2, 2): 1.0}, (2, 1), marks=pytest.mark.slow)])
def test_the_split_is_chosen_by_trial_on_the_runs_clips_and_remembered(tmp_path, clip_factory, monkeypatch, rates,
                                                                      won):
    """Issue 29: on 2 cores a backbone measured fast gets 2 producers + 1 thread from the cost model;
    the run then tries 2 + 2 on its own clips and keeps whichever the (fake) wall clock says is
    faster, with the same bytes as one process; the next run with these settings starts there."""
    import os

    import torch

    import afgen.config
    from afgen.config import CACHE_DIR_ENV

    threads = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    _stub_backbone_speed(monkeypatch, 1e6)
    made = _fake_wall_clock(monkeypatch, rates)
    monkeypatch.setattr(afgen.config, "SPLIT_TRIAL_CLIPS", (1, 2))
    import afgen.extraction.engines.local as local_engine

    applied, real_set_threads = [], local_engine.set_threads
    monkeypatch.setattr(local_engine, "set_threads", lambda b, n: applied.append(n) or real_set_threads(b, n))
    ds = _n_clips(tmp_path, clip_factory, 14)  # 3 clips, then 2 splits x (1 settling + 2 timed), and slack for a
    # process that starts late under load (its clips are not timed)
    cfg = replace(FAST, workers=None, runtime="torch")
    try:
        summary = extract(ds, tmp_path / "f", cfg, SMALL, show_progress=False)
        assert summary.done == 14 and made[-1].trial.done and set(made[-1].trial.rates) == {(2, 1), (2, 2)}
        said = f"{won[0]} producer processes, {won[1]} backbone thread{'s' if won[1] > 1 else ''} on 2 cores, chosen by"
        assert said in summary.split and f"{won[0]}+{won[1]} " in summary.split.split("clips each): ")[1][:5]
        assert applied[0] == 1 and 2 in applied and applied[-1] == won[1]  # the backbone ran each, ends on the winner
        again = extract(ds, tmp_path / "g", cfg, SMALL, show_progress=False)
        assert made[-1].trial is None and f"{said} trial in an earlier run here" in again.split
    finally:
        torch.set_num_threads(threads)
    extract(ds, tmp_path / "one", replace(FAST, runtime="torch"), SMALL, show_progress=False)  # in-process
    for cid in [c.id for c in ds.clips]:
        for mod in ("rgb", "flow"):
            assert (tmp_path / "f" / mod / f"{cid}.npy").read_bytes() == (tmp_path / "one" / mod / f"{cid}.npy").read_bytes()


def test_a_first_ever_auto_run_writes_the_bytes_of_a_run_chosen_from_the_cache(tmp_path, clip_factory, monkeypatch):
    """Issue 29, point 2: the machine's first `--runtime auto` run measures the runtimes (quickly)
    and keeps features from the chosen runtime only: its store equals a later run's, whose
    choice comes from the cache."""
    from afgen.config import CACHE_DIR_ENV

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "empty-cache"))
    ds = _n_clips(tmp_path, clip_factory, 2)
    cfg = replace(FAST, runtime="auto", precision="auto")
    first = extract(ds, tmp_path / "first", cfg, SMALL, show_progress=False)
    again = extract(ds, tmp_path / "again", cfg, SMALL, show_progress=False)
    assert "measured now" in first.runtime_choice and "cached measurement" in again.runtime_choice
    assert FeatureStore(tmp_path / "first").config()["settings"] == FeatureStore(tmp_path / "again").config()["settings"]
    for cid in [c.id for c in ds.clips]:
        for mod in ("rgb", "flow"):
            assert (tmp_path / "first" / mod / f"{cid}.npy").read_bytes() == (
                tmp_path / "again" / mod / f"{cid}.npy").read_bytes()


def test_a_first_ever_run_hands_its_first_clips_to_the_producers_before_measuring(tmp_path, clip_factory, monkeypatch):
    """Issue 29, no dead start: with nothing cached, the producers get the first clips before `auto`
    measures the runtimes (and are paused while it times); the store is byte for byte the one a
    run in one process writes. A second run (cached) hands nothing out early."""
    import afgen.encoders.runtime_choice as rc
    from afgen.config import CACHE_DIR_ENV
    from afgen.extraction.engines.pool import ProducerPool

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "empty-cache"))
    order, real_ahead, real_measure, real_paused = [], ProducerPool.ahead, rc.measure, ProducerPool.paused
    monkeypatch.setattr(ProducerPool, "ahead", lambda self, clips: order.append(("ahead", len(clips))) or
                        real_ahead(self, clips))
    monkeypatch.setattr(rc, "measure", lambda *a, **k: order.append(("measure",)) or
                        real_measure(*a, **k))
    monkeypatch.setattr(ProducerPool, "paused", lambda self: order.append(("paused",)) or real_paused(self))
    import afgen.extraction.engines.local as local_engine
    from afgen.extraction.engines.balance import Balancer

    made = []
    monkeypatch.setattr(local_engine, "Balancer", lambda *a, **k: made.append(Balancer(*a, **k)) or made[-1])
    _n_clips(tmp_path, clip_factory, 3)
    (tmp_path / "data" / "c" / "broken.mp4").write_bytes(b"not a video")  # one of the early clips fails
    ds = discover(tmp_path / "data")
    cfg = replace(FAST, workers=1, runtime="auto", precision="auto")
    first = extract(ds, tmp_path / "first", cfg, SMALL, show_progress=False)
    assert (first.done, first.failed) == (3, 1) and "measured now" in first.runtime_choice
    assert order[:2] == [("ahead", 4), ("measure",)] and ("paused",) in order[2:]  # hushed while it timed
    assert made[-1].ahead == 4 and not made[-1].draining  # the failed clip counted: the split's threads after
    order.clear()
    again = extract(ds, tmp_path / "again", cfg, SMALL, show_progress=False)
    assert again.done == 3 and "cached measurement" in again.runtime_choice and order == []
    extract(ds, tmp_path / "one", replace(FAST, runtime=again.runtime_choice.split()[0], precision="auto"), SMALL,
            show_progress=False)  # in one process, the runtime auto chose
    for cid in [c.id for c in ds.clips if c.path.name != "broken.mp4"]:
        for mod in ("rgb", "flow"):
            assert (tmp_path / "first" / mod / f"{cid}.npy").read_bytes() == (tmp_path / "one" / mod / f"{cid}.npy").read_bytes()


@pytest.mark.parametrize("runtime,streams", [("openvino", True), ("torch", False)])
def test_an_openvino_backbone_is_split_as_one_stream_per_thread(tmp_path, clip_factory, monkeypatch, runtime, streams):
    """OpenVINO runs a stream per thread, so its share of the cores is rounded up (balance.split)."""
    pytest.importorskip("openvino")
    import os

    import afgen.config
    import afgen.extraction.engines.local as local_engine
    from afgen.config import CACHE_DIR_ENV
    from afgen.extraction.engines.balance import Balancer

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))  # no producer cost an earlier run remembered
    made = []
    monkeypatch.setattr(local_engine, "Balancer", lambda *a, **k: made.append(Balancer(*a, **k)) or made[-1])
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(afgen.config, "PRODUCER_COST_PRIOR", 0.0042)
    _stub_backbone_speed(monkeypatch, 4 / 0.0053)  # the backbone 1.12 of 2 cores: 1 thread, or 2 as streams
    ds = _n_clips(tmp_path, clip_factory, 1)
    extract(ds, tmp_path / "f", replace(FAST, runtime=runtime, workers=None), SMALL, show_progress=False)
    assert made and made[-1].streams is streams and made[-1].split.threads == (2 if streams else 1)
