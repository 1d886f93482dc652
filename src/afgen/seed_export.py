"""`afgen export`: write a feature store in the seed's file naming.

OUT/<class>/<id>_rgb.npy (v_R), <id>_flow.npy (v_F) and <id>_combined.npy (v_C), float32,
as the seed saved them for its LSTM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from afgen.contracts.packed import v_c
from afgen.contracts.store import FeatureStore, atomic_save_npy
from afgen.errors import AfgenError

FORMATS = ("seed",)


def export(features: str | Path, out: str | Path, fmt: str = "seed") -> int:
    """Export every ok clip; returns the number of clips written."""
    if fmt not in FORMATS:
        raise AfgenError(f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")
    store, out = FeatureStore(features), Path(out)
    store.config()  # fails clearly when `features` is not a store
    records = store.records("ok")
    for rec in records:
        rgb = store.load("rgb", rec["id"]).astype(np.float32)
        flow = store.load("flow", rec["id"]).astype(np.float32)
        folder = out / rec["label"]
        atomic_save_npy(folder / f"{rec['id']}_rgb.npy", rgb)
        atomic_save_npy(folder / f"{rec['id']}_flow.npy", flow)
        atomic_save_npy(folder / f"{rec['id']}_combined.npy", v_c(rgb, flow))
    return len(records)
