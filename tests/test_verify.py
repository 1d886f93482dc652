"""Damaged stores and runs: a clear AfgenError naming the file, `verify` lists it, `--repair`
plus a rerun gives the clean store back; failed writes leave nothing partial."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, write_clip

from afgen import cli
from afgen.config import ExtractConfig, VideoConfig
from afgen.contracts.openstore import open_store
from afgen.contracts.store import FeatureStore
from afgen.contracts.storecheck import npy_problem
from afgen.errors import AfgenError, RunError, StoreError, WriteError
from afgen.extraction.dataset import discover
from afgen.extraction.extract import extract
from afgen.learning.run_loader import load_run
from afgen.learning.train import train
from afgen.verify import verify

FAST = ExtractConfig(backbone="resnet18", weights="none", workers=0, batch_size=4, precision="fp32")
SMALL = VideoConfig(height=32, width=32)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Clips (two with audio, one without) and the store a clean run extracts from them."""
    root = tmp_path_factory.mktemp("verify")
    write_clip(root / "data/run/a.mp4", seconds=1.0, size=48)
    write_clip(root / "data/run/b.mp4", seconds=1.0, size=48, audio=False)
    write_clip(root / "data/jump/c.mp4", seconds=1.2, size=48, tone_hz=880)
    extract(discover(root / "data"), root / "clean", FAST, SMALL, show_progress=False)
    return root


def _extract_again(data: Path, store: Path):
    return extract(discover(data), store, FAST, SMALL, show_progress=False)


def _npy_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*.npy") if "packed" not in p.parts}


def _truncate(path: Path, size: int = 200) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _save(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, array)


# name -> damage(store) returning the damaged file
STORE_DAMAGE = {
    "truncated rgb": lambda s: (_truncate(s / "rgb/run__a.npy"), s / "rgb/run__a.npy")[1],
    "wrong-shape flow": lambda s: (_save(s / "flow/jump__c.npy", np.zeros((2, 7), np.float16)), s / "flow/jump__c.npy")[1],
    "NaN features": lambda s: (_save(s / "rgb/run__b.npy", np.full(np.load(s / "rgb/run__b.npy").shape, np.nan,
                                                                   np.float16)), s / "rgb/run__b.npy")[1],
    "missing audio file": lambda s: ((s / "audio/run__a.npy").unlink(), s / "audio/run__a.npy")[1],
    "wrong dtype": lambda s: (_save(s / "rgb/jump__c.npy", np.load(s / "rgb/jump__c.npy").astype(np.float64)),
                              s / "rgb/jump__c.npy")[1],
}


@pytest.mark.parametrize("damage", sorted(STORE_DAMAGE))
def test_damaged_feature_file_is_named_reported_and_repaired(clean, tmp_path, damage):
    store = tmp_path / "store"
    shutil.copytree(clean / "clean", store)
    path = STORE_DAMAGE[damage](store)
    with pytest.raises(StoreError) as err:  # what `afgen train` and `afgen evaluate` open first
        open_store(store)
    assert str(path) in str(err.value) and "afgen verify" in str(err.value)
    report = verify(store)
    assert [d.path for d in report.damage] == [path]
    assert report.damage[0].clip == path.stem
    verify(store, repair=True)
    assert FeatureStore(store).manifest.records()[path.stem]["status"] == "damaged"
    summary = _extract_again(clean / "data", store)
    assert (summary.done, summary.skipped) == (1, 2)  # exactly the damaged clip is redone
    assert verify(store).ok
    assert _npy_files(store) == _npy_files(clean / "clean")
    open_store(store)


def test_invalid_config_json_is_a_clear_error_and_repair_keeps_the_clips(clean, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(clean / "clean", store)
    (store / "config.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["extract", str(clean / "data"), str(store), "--backbone", "resnet18", "--weights", "none",
                  "--size", "32", "--workers", "0", "--batch-size", "4", "--precision", "fp32"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "config.json" in err and "Traceback" not in err and "verify" in err
    report = verify(store)
    assert [d.path.name for d in report.damage] == ["config.json"]
    verify(store, repair=True)
    assert (store / "config.json.damaged").is_file()
    summary = _extract_again(clean / "data", store)
    assert (summary.done, summary.skipped) == (0, 3)  # the same settings: every clip is kept
    assert verify(store).ok and _npy_files(store) == _npy_files(clean / "clean")


def test_store_repaired_with_other_settings_redoes_every_clip_instead_of_mixing(clean, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(clean / "clean", store)
    (store / "config.json").write_text("")
    verify(store, repair=True)
    summary = extract(discover(clean / "data"), store, FAST, VideoConfig(height=40, width=40), show_progress=False)
    assert (summary.done, summary.skipped) == (3, 0)


def test_garbage_manifest_line_is_tolerated_reported_and_removed(clean, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(clean / "clean", store)
    manifest = store / "manifest.jsonl"
    with manifest.open("a") as fh:
        fh.write("garbage\n[1, 2]\n")
    assert len(FeatureStore(store).manifest.records()) == 3
    report = verify(store)
    assert [d.path for d in report.damage] == [manifest, manifest]
    verify(store, repair=True)
    assert "garbage" not in manifest.read_text() and "garbage" in (store / "manifest.rejected.jsonl").read_text()
    assert verify(store).ok


def test_damaged_packed_view_is_named_and_rebuilt(clean, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(clean / "clean", store)
    open_store(store)
    _truncate(store / "packed/rgb.npy", 300)
    with pytest.raises(StoreError, match="packed/rgb.npy"):
        open_store(store)
    verify(store, repair=True)
    assert len(open_store(store).packed) == 3


def test_extract_into_a_file_and_verify_of_a_non_store(clean, tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        _extract_again(clean / "data", target)
    with pytest.raises(AfgenError, match="not a folder"):
        verify(target)
    with pytest.raises(AfgenError, match="neither a feature store"):
        verify(tmp_path)


def test_store_from_other_settings_is_refused_naming_config(clean, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(clean / "clean", store)
    with pytest.raises(StoreError, match="config.json.*other settings"):
        extract(discover(clean / "data"), store, FAST, VideoConfig(fps=5, height=32, width=32), show_progress=False)


def test_npy_problem_checks_header_size_shape_dtype_and_values(tmp_path):
    path = tmp_path / "a.npy"
    _save(path, np.ones((4, 3), np.float16))
    assert npy_problem(path, (4, 3), "float16", deep=True) is None
    assert "shape" in npy_problem(path, (5, 3), "float16")
    assert "dtype" in npy_problem(path, (4, None), "float32")
    _truncate(path, path.stat().st_size - 2)
    assert "truncated" in npy_problem(path, (4, 3))
    path.write_bytes(b"not an npy file at all")
    assert "not a readable" in npy_problem(path, (4, 3))
    assert npy_problem(tmp_path / "none.npy", (1,)) == "missing"


# -- failed writes -----------------------------------------------------------------------------

def test_failed_write_leaves_nothing_partial_and_rerun_completes(clean, tmp_path, monkeypatch):
    import afgen.contracts.store as store_module

    real_fsync, calls = store_module.os.fsync, {"n": 0}

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 6:  # mid-way through the second clip's files
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", failing_fsync)
    store = tmp_path / "store"
    with pytest.raises(WriteError, match="No space left on device.*free disk space"):
        _extract_again(clean / "data", store)
    monkeypatch.undo()
    assert not list(store.rglob("*.tmp"))
    fs = FeatureStore(store)
    ok = fs.done_ids()
    assert len(ok) < 3
    for path in store.rglob("*.npy"):  # whatever exists under a final name is whole
        assert npy_problem(path, (None,) * np.load(path).ndim) is None
    summary = _extract_again(clean / "data", store)
    assert summary.done == 3 - len(ok)
    assert _npy_files(store) == _npy_files(clean / "clean")
    ids = [json.loads(line)["id"] for line in (store / "manifest.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids))  # no clip claimed twice


# -- runs --------------------------------------------------------------------------------------

@pytest.fixture
def run_copy(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    return run


@pytest.mark.slow
def test_truncated_model_pt_is_named_and_rebuilt_by_resume(tiny_store, run_copy, capsys):
    _truncate(run_copy / "model.pt", 1000)
    with pytest.raises(RunError, match="model.pt.*damaged.*verify"):
        load_run(run_copy)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["evaluate", str(run_copy)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "model.pt" in err and "Traceback" not in err
    assert [d.path.name for d in verify(run_copy).damage] == ["model.pt"]
    verify(run_copy, repair=True)
    assert (run_copy / "model.pt.damaged").is_file()
    train(tiny_store / "features", run_copy, TINY_TRAIN, resume=True, show_progress=False)
    assert verify(run_copy).ok
    assert set(load_run(run_copy).models) == set(load_run(tiny_store / "run").models)


def test_truncated_checkpoint_is_named_and_its_stage_set_aside(run_copy):
    ckpt = run_copy / "fusion" / "checkpoints" / "last.ckpt"
    _truncate(ckpt, 500)
    report = verify(run_copy)
    assert [d.path for d in report.damage] == [ckpt]
    from afgen.contracts.runfolder import load_checkpoint

    with pytest.raises(RunError, match="last.ckpt.*damaged"):
        load_checkpoint(ckpt)
    verify(run_copy, repair=True)
    assert (run_copy / "fusion" / "checkpoints.damaged" / "last.ckpt").is_file()
    assert verify(run_copy).ok  # model.pt is intact: the run still evaluates


def test_damaged_seeds_json_is_a_clear_error(run_copy):
    (run_copy / "seeds.json").write_text("{")
    from afgen.contracts.runfolder import seed_runs

    with pytest.raises(AfgenError, match="seeds.json"):
        seed_runs(run_copy)


# -- the CLI's top-level handler ---------------------------------------------------------------

def test_unexpected_error_is_short_without_debug_and_full_with_it(tmp_path, monkeypatch, capsys):
    import afgen.verify

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(afgen.verify, "verify", boom)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "RuntimeError: boom" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["verify", str(tmp_path), "--debug"])


def test_verify_cli_exits_non_zero_on_damage_and_zero_when_clean(clean, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(clean / "clean", store)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", str(store)])
    assert exit_.value.code == 0 and "none damaged" in capsys.readouterr().out
    _truncate(store / "rgb/run__a.npy")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", str(store)])
    out = capsys.readouterr().out
    assert exit_.value.code == 1 and "run__a" in out and "truncated" in out


def test_torch_damage_helpers_cover_zip_errors(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(3)}, path)
    _truncate(path, 50)
    from afgen.contracts.modelfile import load_bundle

    with pytest.raises(RunError, match="x.pt"):
        load_bundle(path)
