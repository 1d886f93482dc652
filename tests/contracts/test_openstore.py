"""contracts/openstore.py: the one checked way into a store gives the config, the packed view
and the class order; damage is refused up front by file (unless the caller has just checked)."""

from __future__ import annotations

import shutil

import pytest

from afgen.contracts.openstore import open_store
from afgen.contracts.store import FeatureStore
from afgen.errors import StoreError


def test_open_store_gives_config_packed_view_and_class_order(tiny_store, tmp_path):
    features = tmp_path / "features"
    shutil.copytree(tiny_store / "features", features)
    store = FeatureStore(features)
    labels = sorted({r["label"] for r in store.records("ok")})
    store.record("dataset", {**store.store_config().dataset, "classes": labels[::-1]})  # the dataset's own order
    opened = open_store(features)
    assert opened.root == features and opened.config == store.store_config()
    assert opened.packed.ids == sorted(r["id"] for r in store.records("ok"))
    assert opened.classes == labels[::-1] and len(labels) == 3


def test_a_damaged_clip_file_is_refused_by_name_unless_just_checked(tiny_store, tmp_path):
    features = tmp_path / "features"
    shutil.copytree(tiny_store / "features", features)
    open_store(features)  # packed: later opens do not read the clip files
    victim = sorted((features / "rgb").glob("*.npy"))[0]
    victim.write_bytes(victim.read_bytes()[:-8])
    with pytest.raises(StoreError, match=rf"1 damaged file\(s\): {victim}: truncated .*afgen verify"):
        open_store(features)
    assert len(open_store(features, check=False).packed) == len(FeatureStore(features).records("ok"))


def test_a_folder_that_is_not_a_store_is_named(tmp_path):
    with pytest.raises(StoreError, match="no such folder"):
        open_store(tmp_path / "nowhere")


def test_opening_a_packed_store_reads_each_of_its_files_once(tiny_store, tmp_path, monkeypatch):
    """config.json, the manifest and packed/index.json: one read each (the check, the packing
    decision and the packed view share them)."""
    from pathlib import Path

    features = tmp_path / "features"
    shutil.copytree(tiny_store / "features", features)
    open_store(features)  # packed now
    reads: list[str] = []
    depth = [0]
    for method in ("open", "read_text", "read_bytes"):
        original = getattr(Path, method)

        def counting(self, *args, _original=original, **kwargs):
            if self.name in ("config.json", "manifest.jsonl", "index.json") and depth[0] == 0:
                reads.append(self.name)
            depth[0] += 1
            try:
                return _original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
        monkeypatch.setattr(Path, method, counting)
    opened = open_store(features)
    assert sorted(reads) == ["config.json", "index.json", "manifest.jsonl"]
    assert len(opened.packed.ids) == len(FeatureStore(features).records("ok"))
