"""Reading a store from your own code: FeatureStore, FeatureDataset and pad_collate give the
arrays on disk; `afgen export --format hdf5` round-trips them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import afgen
from afgen.cli import main
from afgen.errors import AfgenError


def test_feature_store_reads_the_files_on_disk(tiny_store):
    store = afgen.FeatureStore(tiny_store / "features")
    manifest = [json.loads(line) for line in (tiny_store / "features" / "manifest.jsonl").read_text().splitlines()]
    ok = {r["id"]: r for r in manifest if r["status"] == "ok"}
    assert store.ids == sorted(ok) and store.labels == {i: r["label"] for i, r in ok.items()}
    assert sorted(store.split("train") + store.split("val") + store.split("test")) == store.ids
    silent = next(i for i, r in ok.items() if not r["has_audio"])
    loud = next(i for i, r in ok.items() if r["has_audio"])
    arrays = store.clip(loud)
    np.testing.assert_array_equal(arrays["v_r"], np.load(tiny_store / "features" / "rgb" / f"{loud}.npy").astype(np.float32))
    np.testing.assert_array_equal(arrays["audio"], np.load(tiny_store / "features" / "audio" / f"{loud}.npy"))
    assert arrays["v_c"].shape == (len(arrays["v_r"]) - 1, 2 * arrays["v_r"].shape[1])
    np.testing.assert_array_equal(arrays["v_c"][:, : arrays["v_r"].shape[1]], arrays["v_r"][1:])
    assert arrays["audio_frames"].shape[0] == len(arrays["v_r"])
    assert "audio" not in store.clip(silent)
    with pytest.raises(AfgenError, match="no extracted clip"):
        store.clip("nope")


def test_feature_dataset_batches_padded_sequences(tiny_store):
    ds = afgen.FeatureDataset(tiny_store / "features", split="train", fields=("v_c", "audio", "audio_frames"))
    store = afgen.FeatureStore(tiny_store / "features")
    assert ds.ids == store.split("train") and ds.classes == sorted(set(store.labels.values()))
    batch = next(iter(DataLoader(ds, batch_size=len(ds), collate_fn=afgen.pad_collate)))
    lengths = batch["v_c_lengths"]
    assert batch["v_c"].shape[:2] == (len(ds), int(lengths.max()))
    for k, clip_id in enumerate(batch["id"]):
        arrays = store.clip(clip_id)
        n = len(arrays["v_c"])
        assert int(lengths[k]) == n
        torch.testing.assert_close(batch["v_c"][k, :n], torch.from_numpy(arrays["v_c"]))
        assert not batch["v_c"][k, n:].any()
        assert bool(batch["has_audio"][k]) == ("audio" in arrays)
        assert int(batch["label"][k]) == ds.classes.index(store.labels[clip_id])
    assert not batch["audio"][~batch["has_audio"]].any()
    with pytest.raises(AfgenError, match="unknown fields"):
        afgen.FeatureDataset(tiny_store / "features", fields=("pixels",))


def test_hdf5_export_round_trips(tiny_store, tmp_path):
    import h5py

    with pytest.raises(SystemExit) as exit_:
        main(["export", str(tiny_store / "features"), str(tmp_path / "f.h5"), "--format", "hdf5"])
    assert exit_.value.code in (0, None)
    store = afgen.FeatureStore(tiny_store / "features")
    with h5py.File(tmp_path / "f.h5", "r") as h5:
        assert sorted(h5) == store.ids
        assert json.loads(h5.attrs["config"]) == store.config()
        for clip_id in store.ids:
            arrays = store.clip(clip_id)
            assert set(h5[clip_id]) == set(arrays)
            for name, array in arrays.items():
                np.testing.assert_array_equal(h5[clip_id][name][()], array)
            assert h5[clip_id].attrs["label"] == store.labels[clip_id]
