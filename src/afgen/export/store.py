"""`afgen export`: a feature store in another layout, for other tools.

- `seed`: OUT/<class>/<id>_rgb.npy (v_R), <id>_flow.npy (v_F) and <id>_combined.npy (v_C),
  float32, as the seed saved them for its LSTM (unlabelled clips go to OUT/_unlabelled/).
- `hdf5`: one file (h5py), one group per clip with datasets v_r, v_f, v_c, audio and
  audio_frames (when the clip has a track) and the manifest's fields as attributes; the
  store's config.json as the root's `config` attribute.
"""

from __future__ import annotations

import json
from pathlib import Path

from afgen.config import EXPORT_FORMATS
from afgen.contracts.store import FeatureStore, atomic_save_npy
from afgen.errors import AfgenError

UNLABELLED = "_unlabelled"


def export(features: str | Path, out: str | Path, fmt: str = "seed") -> int:
    """Export every ok clip; returns the number of clips written."""
    if fmt not in EXPORT_FORMATS:
        raise AfgenError(f"unknown export format {fmt!r}; use {', '.join(EXPORT_FORMATS)}")
    store = FeatureStore(features).require()
    return _hdf5(store, Path(out)) if fmt == "hdf5" else _seed(store, Path(out))


def _seed(store: FeatureStore, out: Path) -> int:
    records = store.records("ok")
    for rec in records:
        arrays = store.clip(rec["id"], rec)
        folder = out / (rec["label"] or UNLABELLED)
        atomic_save_npy(folder / f"{rec['id']}_rgb.npy", arrays["v_r"])
        atomic_save_npy(folder / f"{rec['id']}_flow.npy", arrays["v_f"])
        atomic_save_npy(folder / f"{rec['id']}_combined.npy", arrays["v_c"])
    return len(records)


def _hdf5(store: FeatureStore, out: Path) -> int:
    try:
        import h5py
    except ImportError:
        raise AfgenError("--format hdf5 needs h5py: pip install h5py") from None
    if out.suffix.lower() not in (".h5", ".hdf5"):
        out = out / "features.h5"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    records = store.records("ok")
    try:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["config"] = json.dumps(store.config())
            for rec in records:
                group = h5.create_group(rec["id"])
                for name, array in store.clip(rec["id"], rec).items():
                    group.create_dataset(name, data=array)
                for key, value in rec.items():
                    if value is not None and not isinstance(value, (dict, list)):
                        group.attrs[key] = value
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(records)
