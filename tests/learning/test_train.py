from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, fake_gpus

from afgen.config import TrainConfig
from afgen.contracts.packed import load_packed
from afgen.errors import AfgenError
from afgen.learning.batches import ClipSet, collate
from afgen.learning.fit import GeneratorModule, selection_score
from afgen.learning.method_registry import registry
from afgen.learning.models import AudioVisualClassifier, SoundFeatureGenerator
from afgen.learning.run_loader import load_run
from afgen.learning.split_indices import resolve_splits
from afgen.learning.train import train


def _trained_stages() -> list[str]:
    """Every registered stage that trains a model of its own (not a checkpoint of another)."""
    return [s for s in registry().stages if s != "generator_acc"]


def test_run_folder_has_checkpoints_logs_curves_and_provenance(tiny_run):
    for stage in _trained_stages():
        assert (tiny_run / stage / "checkpoints" / "best.ckpt").is_file()
        assert (tiny_run / stage / "checkpoints" / "last.ckpt").is_file()
        assert (tiny_run / stage / "logs" / "version_0" / "metrics.csv").is_file()
        assert list((tiny_run / stage / "tensorboard").rglob("events.out.tfevents*"))
        assert (tiny_run / stage / "learning_curve.png").stat().st_size > 1000
    assert (tiny_run / "generator" / "checkpoints" / "best_acc.ckpt").is_file()
    prov = json.loads((tiny_run / "provenance.json").read_text())
    assert prov["seed"] == TINY_TRAIN.seed and prov["store_config"]["settings"]["backbone"] == "resnet18"
    assert "torch" in prov["versions"] and set(prov["metrics"]) == set(_trained_stages())
    assert set(prov["stages"]) == set(registry().stages) and prov["stages"]["fusion"]["needs"] == ["generator"]


def test_every_model_reloads_from_model_pt_with_the_same_predictions(tiny_store, tiny_run):
    """Each model from model.pt predicts as its stage's selected checkpoint does, in eval mode."""
    import copy

    trained = load_run(tiny_run)
    assert set(trained.models) == set(registry().stages)
    assert trained.models["fusion_token"].token is not None  # the learned missing-audio token
    assert trained.models["fusion_gen"].token is None and trained.models["fusion_md"].token is None
    packed = load_packed(tiny_store / "features")
    ds = ClipSet(packed, list(range(len(packed))), {c: i for i, c in enumerate(trained.classes)})
    v_c, lengths, _, audio, has, _ = collate([ds[i] for i in range(len(ds))])
    # the checkpoint each model was selected from; generator_acc is the generator's best-accuracy one
    checkpoints = {s: tiny_run / s / "checkpoints" / "best.ckpt" for s in _trained_stages()}
    checkpoints["generator_acc"] = tiny_run / "generator" / "checkpoints" / "best_acc.ckpt"
    assert set(checkpoints) == set(trained.models)
    with torch.no_grad():
        for name, model in trained.models.items():
            state = torch.load(checkpoints[name], weights_only=True)["state_dict"]
            reference = copy.deepcopy(model)  # the architecture; its weights are the checkpoint's
            reference.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
            reference.eval()
            assert not model.training, name
            for key, value in model.state_dict().items():
                torch.testing.assert_close(state[f"model.{key}"], value)
            if isinstance(model, SoundFeatureGenerator):
                torch.testing.assert_close(model(v_c, lengths)[0], reference(v_c, lengths)[0])
            else:
                torch.testing.assert_close(model(v_c, lengths, audio, ~has), reference(v_c, lengths, audio, ~has))


def _metrics_rows(stage_dir):
    rows = list(csv.DictReader((stage_dir / "logs" / "version_0" / "metrics.csv").open()))
    return {int(r["epoch"]): r for r in rows if r.get("val_objective")}


def test_selected_generator_has_the_lowest_validation_objective(tiny_run):
    rows = _metrics_rows(tiny_run / "generator")
    assert len(rows) >= 2
    objective = {e: float(r["val_objective"]) for e, r in rows.items()}
    best_epoch = min(objective, key=lambda e: (objective[e], e))
    ckpt = torch.load(tiny_run / "generator" / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["epoch"] == best_epoch
    select = {e: float(r["val_select"]) for e, r in rows.items()}
    acc_ckpt = torch.load(tiny_run / "generator" / "checkpoints" / "best_acc.ckpt", weights_only=True)
    assert select[acc_ckpt["epoch"]] == max(select.values())
    assert np.isfinite(objective[best_epoch])


def test_classifiers_select_on_accuracy_with_ties_broken_by_loss(tiny_run):
    assert selection_score(10, 5.0) > selection_score(9, 0.0)  # one more correct clip always wins
    assert selection_score(9, 0.2) > selection_score(9, 0.3)  # at equal accuracy, the lower loss
    rows = _metrics_rows(tiny_run / "fusion")
    select = {e: float(r["val_select"]) for e, r in rows.items()}
    ckpt = torch.load(tiny_run / "fusion" / "checkpoints" / "best.ckpt", weights_only=True)
    assert select[ckpt["epoch"]] == max(select.values())


def test_lambda_zero_regression_has_no_effect_on_classification(tiny_store):
    packed = load_packed(tiny_store / "features")
    labels = sorted(set(packed.labels))
    ds = ClipSet(packed, list(range(len(packed))), {c: i for i, c in enumerate(labels)})
    batch = collate([ds[i] for i in range(len(ds))])
    torch.manual_seed(0)
    model = SoundFeatureGenerator(packed.visual_dim, len(labels), packed.audio_dim, hidden=8, dropout=0, input_dropout=0)

    def grads(lambda_reg, audio_shift):
        module = GeneratorModule(model, TINY_TRAIN, None, lambda_reg)
        module.log = lambda *a, **k: None
        model.zero_grad()
        v_c, lengths, y, audio, has, gen = batch
        module._step((v_c, lengths, y, audio + audio_shift, has, gen), "train").backward()
        return {k: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for k, p in model.named_parameters()}

    base, shifted = grads(0.0, 0.0), grads(0.0, 5.0)  # other audio targets change nothing at λ = 0
    for key in base:
        torch.testing.assert_close(base[key], shifted[key], rtol=0, atol=0)
    assert torch.count_nonzero(base["regress.weight"]) == 0
    with_reg = grads(1.0, 0.0)  # ... and do at λ = 1 (the test can fail)
    assert not torch.equal(with_reg["lstm.weight_ih_l0"], base["lstm.weight_ih_l0"])


def test_classifiers_train_on_out_of_fold_generated_audio(tiny_store, tiny_run):
    packed = load_packed(tiny_store / "features")
    train_idx = resolve_splits(packed, TINY_TRAIN)["train"]
    oof = np.load(tiny_run / "oof" / "generator" / "generated.npz")
    assert list(oof["ids"]) == [packed.ids[i] for i in train_idx]
    trained = load_run(tiny_run)
    ds = ClipSet(packed, train_idx, {c: 0 for c in trained.classes})
    v_c, lengths, *_ = collate([ds[i] for i in range(len(ds))])
    own = trained.generator.generate(v_c, lengths).numpy()
    assert oof["audio"].shape == own.shape and not np.allclose(oof["audio"], own)  # not the generator's own output
    for fold in range(TINY_TRAIN.oof_folds):
        assert (tiny_run / "oof" / "generator" / f"fold-{fold}" / "checkpoints" / "best.ckpt").is_file()


def test_token_replaces_missing_audio_only():
    torch.manual_seed(0)
    model = AudioVisualClassifier(16, 3, 6, hidden=8, missing_token=True).eval()
    with torch.no_grad():
        model.token.copy_(torch.randn(6))
    v_c, lengths = torch.randn(4, 5, 16), torch.full((4,), 5)
    audio = torch.randn(4, 6)
    missing = torch.tensor([True, False, True, False])
    out = model(v_c, lengths, audio, missing)
    other = model(v_c, lengths, audio + 3.0, missing)
    torch.testing.assert_close(out[missing], other[missing])  # missing rows ignore their audio values
    assert not torch.allclose(out[~missing], other[~missing])


@pytest.mark.slow  # trains every stage twice (10 s); the full suite and CI run it
def test_same_seed_same_metrics(tiny_store, tmp_path):
    cfg = replace(TINY_TRAIN, epochs=2)
    a = train(tiny_store / "features", tmp_path / "a", cfg, show_progress=False).metrics
    b = train(tiny_store / "features", tmp_path / "b", cfg, show_progress=False).metrics
    assert a == b


@pytest.mark.slow
def test_seeds_give_one_sub_run_each_and_their_mean(tiny_store, tmp_path):
    cfg = replace(TINY_TRAIN, epochs=2, oof_folds=2)
    result = train(tiny_store / "features", tmp_path / "multi", cfg, show_progress=False, seeds=[0, 1])
    assert json.loads((tmp_path / "multi" / "seeds.json").read_text())["runs"] == ["seed-0", "seed-1"]
    for seed in (0, 1):
        assert (tmp_path / "multi" / f"seed-{seed}" / "model.pt").is_file()
        assert json.loads((tmp_path / "multi" / f"seed-{seed}" / "provenance.json").read_text())["seed"] == seed
    per_seed = result.per_seed
    assert per_seed[0] != per_seed[1]  # independent runs
    for stage, metrics in result.metrics.items():
        for key, value in metrics.items():
            assert value == pytest.approx(np.mean([per_seed[0][stage][key], per_seed[1][stage][key]]))
    # the same seeds in parallel processes (one torch thread each) give the same runs as one
    # after another, up to float rounding in the last bit
    parallel = train(tiny_store / "features", tmp_path / "par", replace(cfg, seed_workers=2), show_progress=False,
                     seeds=[0, 1])
    for seed in (0, 1):
        for stage, metrics in per_seed[seed].items():
            assert parallel.per_seed[seed][stage] == pytest.approx(metrics, rel=1e-5, abs=1e-6)
    # evaluate scores every seed on the same masks: each cell is the mean of the per-seed values
    from afgen.config import EvalConfig
    from afgen.learning.evaluate import evaluate

    evaluated = evaluate(tmp_path / "multi", cfg=EvalConfig(missing_rates=(0.5, 1.0), bootstrap=200, mask_draws=2))
    assert evaluated.results["seeds"] == [0, 1] and "seed 1" in evaluated.table and "mean ± std" in evaluated.table
    for cells in evaluated.results["rates"].values():
        for key, cell in ((k, v) for k, v in cells.items() if k != "missing_fraction"):
            values = [c["value"] for c in cell["per_seed"]]
            assert cell["top1"]["value"] == pytest.approx(np.mean(values)), key
            assert cell["seed_mean_std"][0] == pytest.approx(np.mean(values))
    # a rerun with resume skips finished seeds; without, it refuses to overwrite
    again = train(tiny_store / "features", tmp_path / "multi", cfg, show_progress=False, seeds=[0, 1], resume=True)
    assert again.per_seed == per_seed
    from afgen.errors import AfgenError

    with pytest.raises(AfgenError, match="already holds"):
        train(tiny_store / "features", tmp_path / "multi", cfg, show_progress=False, seeds=[0, 1])


@pytest.mark.slow  # a store of its own and a full training (9 s); the full suite and CI run it
def test_training_with_every_audio_missing_still_trains_classification(tiny_store, tmp_path):
    import shutil

    from afgen.contracts.manifest import Manifest

    silent = tmp_path / "silent"
    shutil.copytree(tiny_store / "features", silent, ignore=shutil.ignore_patterns("packed"))
    recs = Manifest(silent / "manifest.jsonl").records()
    shutil.rmtree(silent / "audio")
    (silent / "manifest.jsonl").unlink()
    for rec in recs.values():
        Manifest(silent / "manifest.jsonl").append({**rec, "has_audio": False})
    result = train(silent, tmp_path / "run", replace(TINY_TRAIN, epochs=15), show_progress=False)
    m = result.metrics["generator"]
    # no audio: the objective is the cross-entropy alone, and the classifier still learns
    assert m["val_mse"] == 0.0 and m["val_objective"] == pytest.approx(m["val_ce"])
    rows = list(csv.DictReader((tmp_path / "run" / "generator" / "logs" / "version_0" / "metrics.csv").open()))
    train_ce = [float(r["train_ce"]) for r in rows if r.get("train_ce")]
    assert len(train_ce) >= 10 and train_ce[-1] < 0.7 * train_ce[0]
    assert (tmp_path / "run" / "model.pt").is_file()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_complete_run_validated_on_the_whole_split(tiny_store, tmp_path):
    import subprocess
    import sys

    from afgen.config import TrainConfig
    from afgen.verify import verify

    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "afgen", "train", str(tiny_store / "features"), str(run), "--devices", "2",
           "--strategy", "ddp", "--accelerator", "cpu", "--epochs", "2", "--hidden", "16", "--oof-folds", "0",
           "--batch-size", "4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run: ") == 1  # the other rank trains but neither writes nor prints
    assert verify(run).ok
    packed = load_packed(tiny_store / "features")
    trained = load_run(run)
    val = resolve_splits(packed, TrainConfig())["val"]
    for stage in _trained_stages():
        with (run / stage / "logs" / "version_0" / "metrics.csv").open() as fh:
            counts = {float(r["val_clips"]) for r in csv.DictReader(fh) if r.get("val_clips")}
        assert counts == {float(len(val))}, stage  # every validation clip once, not one rank's half
    ds = ClipSet(packed, val, {c: i for i, c in enumerate(trained.classes)})
    v_c, lengths, labels, *_ = collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        acc = float((trained.generator(v_c, lengths)[0].argmax(1) == labels).float().mean())
    recorded = json.loads((run / "metrics.json").read_text())["generator"]["val_acc"]
    assert recorded == pytest.approx(acc, abs=1e-6)


@pytest.mark.slow
def test_unlabelled_clips_are_left_out_of_training(tiny_store, tmp_path, caplog):
    import logging
    import shutil

    features = tmp_path / "features"
    shutil.copytree(tiny_store / "features", features, ignore=shutil.ignore_patterns("packed"))
    lines = [json.loads(line) for line in (features / "manifest.jsonl").read_text().splitlines()]
    ok = [r for r in lines if r["status"] == "ok"]
    for r in ok[:3]:
        r["label"] = None  # as `afgen extract` records a clip from a folder without classes
    (features / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    cfg = TrainConfig(epochs=1, hidden=16, fusion_hidden=16, batch_size=8, oof_folds=0)
    with caplog.at_level(logging.WARNING):
        train(features, tmp_path / "run", cfg, show_progress=False)
    assert f"3 of {len(ok)} clips have no label" in caplog.text
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert sum(provenance["splits"].values()) == len(ok) - 3
    assert None not in provenance["classes"]
    for r in lines:
        r["label"] = None
    (features / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    shutil.rmtree(features / "packed")
    with pytest.raises(AfgenError, match="none of the store's .* clips has a label"):
        train(features, tmp_path / "run2", cfg, show_progress=False)


def test_parallel_seeds_on_a_multi_gpu_machine_take_one_gpu_each(monkeypatch, tmp_path):
    """--seed-workers > 1 with --devices auto on several GPUs: each seed's process gets one GPU
    (round robin) and devices 1, never DDP over all of them in every worker (faked torch.cuda)."""
    import os

    import afgen.learning.train as T

    fake_gpus(monkeypatch, 2)
    assert T.seed_gpus(TINY_TRAIN, 3) == [0, 1, 0]
    assert T.seed_gpus(replace(TINY_TRAIN, accelerator="cpu"), 3) == [None] * 3
    seen = {}

    def fake_one(features, run, cfg, resume, checked=False, show_progress=True):
        seen.update(devices=cfg.devices, visible=os.environ.get("CUDA_VISIBLE_DEVICES"))
        return type("R", (), {"metrics": {}})()

    monkeypatch.setattr(T, "_train_one", fake_one)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # not this test process's threads
    monkeypatch.setattr(T.logging, "basicConfig", lambda **k: None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    T._train_seed_process("f", Path("r"), TINY_TRAIN, False, 1, gpu=1)
    assert seen["visible"] == "6"  # the second visible GPU, by its own id
    # and train() itself hands each seed's process devices 1 and its own GPU
    submitted = []

    class Pool:
        def submit(self, fn, features, run, cfg, resume, threads, gpu):
            from concurrent.futures import Future

            submitted.append((cfg.seed, cfg.devices, gpu))
            done = Future()
            done.set_result({})
            return done

    from contextlib import contextmanager

    monkeypatch.setattr(T, "process_pool", contextmanager(lambda n: (yield Pool())))
    monkeypatch.setattr(T, "open_store", lambda *a, **k: None)
    monkeypatch.setattr(T.FeatureStore, "require", lambda self: None)
    T.train(tmp_path / "features", tmp_path / "run", replace(TINY_TRAIN, seed_workers=3), show_progress=False,
            seeds=[0, 1, 2])
    assert submitted == [(0, "1", 0), (1, "1", 1), (2, "1", 0)]


def test_one_train_reads_config_json_and_the_manifest_once_each(tiny_store, tmp_path, monkeypatch):
    """Issue 28: `train()` opens the store once (contracts.openstore.open_store): config.json and
    manifest.jsonl are each read exactly once, checking, packing (a fresh copy: the packed view
    is built) and training included."""
    import builtins
    import shutil

    features = tmp_path / "features"
    shutil.copytree(tiny_store / "features", features, ignore=shutil.ignore_patterns("packed"))
    reads: list[str] = []
    watched = {"config.json", "manifest.jsonl"}
    depth = [0]  # Path.read_text opens through Path.open: one read, counted once

    def counting(original, name_of):
        def wrapper(*args, **kwargs):
            name = Path(str(name_of(args))).name
            if name in watched and depth[0] == 0:
                reads.append(name)
            depth[0] += 1
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
        return wrapper

    for method in ("open", "read_text", "read_bytes"):
        monkeypatch.setattr(Path, method, counting(getattr(Path, method), lambda a: a[0]))
    monkeypatch.setattr(builtins, "open", counting(builtins.open, lambda a: a[0]))
    train(features, tmp_path / "run", replace(TINY_TRAIN, epochs=1, methods=("visual_only",)), show_progress=False)
    assert sorted(reads) == ["config.json", "manifest.jsonl"]
    assert (features / "packed" / "index.json").is_file() and (tmp_path / "run" / "model.pt").is_file()


def test_a_resume_for_some_rows_keeps_the_stages_the_run_already_holds(tiny_store, tmp_path):
    from afgen.contracts.modelfile import read_model_file

    run, features = tmp_path / "run", tiny_store / "features"
    train(features, run, replace(TINY_TRAIN, epochs=1, methods=("av_generated",)), show_progress=False)
    before = read_model_file(run / "model.pt")
    assert {"generator", "fusion"} <= set(before.models)
    train(features, run, replace(TINY_TRAIN, epochs=1, methods=("visual_only",)), resume=True, show_progress=False)
    after = read_model_file(run / "model.pt")
    assert set(after.models) == set(before.models)
    assert after.records["fusion"] == before.records["fusion"]
    assert all(torch.equal(after.models["fusion"][k], v) for k, v in before.models["fusion"].items())
    assert "fusion" in json.loads((run / "metrics.json").read_text())
    assert load_run(run).fusion is not None


def test_a_resume_of_finished_seeds_trains_the_rows_they_lack(tiny_store, tmp_path):
    from afgen.contracts.modelfile import read_model_file

    run, features = tmp_path / "run", tiny_store / "features"
    train(features, run, replace(TINY_TRAIN, epochs=1, methods=("visual_only",)), show_progress=False, seeds=[0])
    assert "fusion" not in read_model_file(run / "seed-0" / "model.pt").models
    train(features, run, replace(TINY_TRAIN, epochs=1, methods=("av_generated",)), resume=True, show_progress=False,
          seeds=[0])
    assert {"generator", "fusion"} <= set(read_model_file(run / "seed-0" / "model.pt").models)


def test_a_resume_drops_an_earlier_stage_whose_generator_was_trained_again(tiny_store, tmp_path):
    """model.pt never pairs a classifier with another generator than the one it learnt from: the
    generator trained further (more epochs) on resume, the earlier fusion is dropped, not kept."""
    from afgen.contracts.modelfile import read_model_file

    run, features = tmp_path / "run", tiny_store / "features"
    train(features, run, replace(TINY_TRAIN, epochs=1, methods=("av_generated",)), show_progress=False)
    train(features, run, replace(TINY_TRAIN, epochs=3, methods=("visual_only",)), resume=True, show_progress=False)
    after = read_model_file(run / "model.pt")
    assert "generator" in after.models and "fusion" not in after.models
