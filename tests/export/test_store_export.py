"""`afgen export --format hdf5` (export/store.py): every clip's arrays, label and the store's
config round-trip through the HDF5 file."""

from __future__ import annotations

import json

import numpy as np
import pytest

import afgen
from afgen.cli import main


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
