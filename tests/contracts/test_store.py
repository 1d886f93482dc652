"""Reading a store from your own code: FeatureStore gives the arrays on disk, by clip."""

from __future__ import annotations

import json

import numpy as np
import pytest

import afgen
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
