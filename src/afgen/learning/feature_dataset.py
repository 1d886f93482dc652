"""A feature store as a `torch.utils.data.Dataset`, for your own training code.

    from torch.utils.data import DataLoader
    from afgen import FeatureDataset, pad_collate

    ds = FeatureDataset("features", split="train", fields=("v_c", "audio"))
    for batch in DataLoader(ds, batch_size=32, shuffle=True, collate_fn=pad_collate):
        batch["v_c"]          # [B, T, 2D], zero-padded; batch["v_c_lengths"] [B]
        batch["audio"]        # [B, A] (zeros where batch["has_audio"] is False)
        batch["label"]        # [B] class index in ds.classes (-1: unlabelled)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from afgen.contracts.store import FeatureStore
from afgen.errors import AfgenError

#: Fields a FeatureDataset item can hold, and whether each is a sequence (padded by pad_collate).
FIELDS = {"v_r": True, "v_f": True, "v_c": True, "audio": False, "audio_frames": True}


class FeatureDataset(Dataset):
    """The ok clips of a store (of one manifest split, or all with split=None) as dicts of
    tensors: the asked-for `fields`, `label` (index into `classes`, -1 if unlabelled),
    `has_audio` and `id`. Where a clip has no audio track, audio fields are zeros of the
    store's audio shape, and has_audio is False."""

    def __init__(self, path: str | Path, split: str | None = None, fields: Sequence[str] = ("v_c", "audio")) -> None:
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise AfgenError(f"unknown fields {unknown}; choose from {', '.join(FIELDS)}")
        self.store = FeatureStore(path).require()
        self.fields = tuple(fields)
        records = {r["id"]: r for r in self.store.records("ok")}  # the manifest, read once
        self._records = {i: r for i, r in sorted(records.items()) if split is None or r.get("split") == split}
        self.ids = list(self._records)
        if not self.ids:
            raise AfgenError(f"no extracted clips in split {split!r}", self.store.root)
        self.labels = [r.get("label") for r in self._records.values()]
        config = self.store.store_config()
        self.classes = config.classes_of([r.get("label") for r in records.values()])
        self._index = {c: k for k, c in enumerate(self.classes)}
        self._audio_dim = config.audio_dim
        self._bands: int | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k: int) -> dict:
        clip_id = self.ids[k]
        arrays = self.store.clip(clip_id, self._records[clip_id])
        item: dict = {"id": clip_id, "label": self._index.get(self.labels[k], -1), "has_audio": "audio" in arrays}
        for name in self.fields:
            if name in arrays:
                item[name] = torch.from_numpy(arrays[name])
            elif name == "audio":
                item[name] = torch.zeros(self._audio_dim)
            else:  # audio_frames of a clip without a track: zeros, one row per frame
                bands = arrays["v_r"].shape[0]
                item[name] = torch.zeros(bands, self._frames_dim())
        return item

    def _frames_dim(self) -> int:
        """The bands of audio_frames, from the first clip that has them (looked up once)."""
        if self._bands is None:
            self._bands = 0
            for clip_id in self.ids:
                path = self.store.path("audio_frames", clip_id)
                if path.is_file():
                    self._bands = int(np.load(path, mmap_mode="r").shape[1])
                    break
        return self._bands


def pad_collate(items: list[dict]) -> dict:
    """Stack a list of FeatureDataset items: sequence fields zero-padded to the longest, with
    `<field>_lengths`; fixed-size fields stacked; ids as a list."""
    out: dict = {"id": [it["id"] for it in items], "label": torch.tensor([it["label"] for it in items]),
                 "has_audio": torch.tensor([it["has_audio"] for it in items])}
    for name, sequence in FIELDS.items():
        if name not in items[0]:
            continue
        values = [it[name] for it in items]
        if sequence:
            out[name] = torch.nn.utils.rnn.pad_sequence(values, batch_first=True)
            out[f"{name}_lengths"] = torch.tensor([len(v) for v in values])
        else:
            out[name] = torch.stack(values)
    return out
