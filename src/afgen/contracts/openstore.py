"""The one checked way into a feature store for the pipelines (train, evaluate): config.json and
the manifest read once, the cheap check (contracts/storecheck.py: every ok clip's files by header
and size, the packed view by its index), the packed view built when it is out of date, and what
the pipelines need: the config, the packed view and the class order. `afgen verify` runs the
full check (verify.py) on the same kind of reading (StoreFiles), and the repair after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from afgen.contracts.packed import PackedFeatures, load_packed
from afgen.contracts.store import FeatureStore
from afgen.contracts.storecheck import StoreFiles, damage_error, store_damage
from afgen.contracts.storeconfig import StoreConfig


@dataclass(frozen=True)
class OpenStore:
    """A feature store opened for a pipeline: its config.json, its packed view, its classes."""

    root: Path
    config: StoreConfig
    packed: PackedFeatures

    @property
    def classes(self) -> list[str]:
        """The store's classes in the one class order (StoreConfig.classes_of)."""
        return self.config.classes_of(self.packed.labels)


def open_store(root: str | Path, check: bool = True) -> OpenStore:
    """Open the store at `root`: a StoreError naming the damaged files and the fix if the cheap
    check finds any (`check=False` where this process's caller has just checked it, e.g. a
    seed's process in a multi-seed train)."""
    FeatureStore(root).require()
    files = StoreFiles.read(root)
    if check:
        damage, _ = store_damage(files, deep=False)
        if damage:
            raise damage_error(files.store.root, damage)
    if files.config is None:  # unchecked and unreadable: the reader's own error
        files.store.store_config()
    packed = load_packed(root, records=files.ok_records(), config=files.config, index=files.packed_index)
    return OpenStore(files.store.root, files.config, packed)


__all__ = ["OpenStore", "open_store"]
