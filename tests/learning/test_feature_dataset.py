"""Reading a store from your own code as a torch Dataset: FeatureDataset and pad_collate give
the arrays on disk, padded into batches."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import afgen
from afgen.errors import AfgenError


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
