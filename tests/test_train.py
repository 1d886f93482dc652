from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch
from conftest import TINY_TRAIN

from afgen.data import load_packed
from afgen.train import ClipSet, collate, load_run, train


def test_run_folder_has_checkpoints_logs_curves_and_provenance(tiny_run):
    for stage in ("generator", "fusion", "fusion_md"):
        assert (tiny_run / stage / "checkpoints" / "best.ckpt").is_file()
        assert (tiny_run / stage / "checkpoints" / "last.ckpt").is_file()
        assert (tiny_run / stage / "logs" / "version_0" / "metrics.csv").is_file()
        assert list((tiny_run / stage / "tensorboard").rglob("events.out.tfevents*"))
        assert (tiny_run / stage / "learning_curve.png").stat().st_size > 1000
    prov = json.loads((tiny_run / "provenance.json").read_text())
    assert prov["seed"] == TINY_TRAIN.seed and prov["store_config"]["settings"]["backbone"] == "resnet18"
    assert "torch" in prov["versions"] and set(prov["metrics"]) == {"generator", "fusion", "fusion_md"}


def test_checkpoint_reloads_with_the_same_predictions(tiny_store, tiny_run):
    trained = load_run(tiny_run)
    packed = load_packed(tiny_store / "features")
    ds = ClipSet(packed, list(range(len(packed))), {c: i for i, c in enumerate(trained.classes)})
    v_c, lengths, *_ = collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        first = trained.generator(v_c, lengths)[0]
        again = load_run(tiny_run).generator(v_c, lengths)[0]
    torch.testing.assert_close(first, again)
    state = torch.load(tiny_run / "generator" / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    for key, value in trained.generator.state_dict().items():
        torch.testing.assert_close(state[f"model.{key}"], value)


def test_same_seed_same_metrics(tiny_store, tmp_path):
    cfg = replace(TINY_TRAIN, epochs=2)
    a = train(tiny_store / "features", tmp_path / "a", cfg, show_progress=False).metrics
    b = train(tiny_store / "features", tmp_path / "b", cfg, show_progress=False).metrics
    assert a == b


def test_training_with_every_audio_missing_still_trains_classification(tiny_store, tmp_path):
    import shutil

    from afgen.manifest import Manifest

    silent = tmp_path / "silent"
    shutil.copytree(tiny_store / "features", silent, ignore=shutil.ignore_patterns("packed"))
    recs = Manifest(silent / "manifest.jsonl").records()
    shutil.rmtree(silent / "audio")
    (silent / "manifest.jsonl").unlink()
    for rec in recs.values():
        Manifest(silent / "manifest.jsonl").append({**rec, "has_audio": False})
    result = train(silent, tmp_path / "run", replace(TINY_TRAIN, epochs=15), show_progress=False)
    assert result.metrics["generator"]["val_acc"] > 1 / 3 + 0.1  # better than chance over 3 classes
    assert np.isfinite(result.metrics["generator"]["val_loss"])
