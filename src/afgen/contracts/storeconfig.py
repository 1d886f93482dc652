"""A feature store's config.json: `new_store_config` lays out what `afgen extract` writes, and
`StoreConfig` names its sections (settings: what decides a clip's bytes; extract: how the store
was extracted; dataset: which clips, and the class order) and the values readers need, so no
module outside contracts/ indexes the file by hand. It wraps the parsed dict, as a run's
model.pt and an exported model's meta.json also carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The sections of config.json: settings decide a clip's bytes (a rerun must match them);
#: extract and dataset are provenance (how the store was extracted, which clips, the class order).
SETTINGS, EXTRACT, DATASET = "settings", "extract", "dataset"


def new_store_config(settings: dict[str, Any], extract: dict[str, Any], versions: dict[str, Any]) -> dict[str, Any]:
    """config.json as `afgen extract` writes it (FeatureStore.open_for_writing writes it whole;
    the dataset section is recorded after, by FeatureStore.record)."""
    return {SETTINGS: settings, "versions": versions, EXTRACT: extract}


@dataclass(frozen=True)
class StoreConfig:
    """config.json of a feature store (FeatureStore.store_config() reads and checks it)."""

    raw: dict[str, Any]

    @property
    def settings(self) -> dict[str, Any]:
        """What decides a clip's bytes: backbone, weights identity, video, flow, audio, dtype, precision, runtime."""
        return self.raw[SETTINGS]

    @property
    def extract(self) -> dict[str, Any]:
        """How the store was extracted (batch size, device, engine, the weights arguments); {} if not recorded."""
        return self.raw.get(EXTRACT) or {}

    @property
    def dataset(self) -> dict[str, Any]:
        """Which clips the store holds, chosen how, and the class order; {} if not recorded."""
        return self.raw.get(DATASET) or {}

    @property
    def audio_dim(self) -> int:
        """The width of a clip's audio feature."""
        return int(self.settings["audio"]["dim"])

    @property
    def dtype(self) -> str:
        """The dtype the features are stored in (float32 for stores that did not record one)."""
        return str(self.settings.get("dtype", "float32"))

    @property
    def class_order(self) -> list[str]:
        """The classes in the order the dataset declared them ([] if it declared none)."""
        return list(self.dataset.get("classes") or [])

    def classes_of(self, labels: list[str | None]) -> list[str]:
        """The classes present in `labels` in the dataset's order (e.g. moments_categories.txt),
        then any it does not list, sorted: the one class order of training, scoring and readers."""
        present = set(labels) - {None}
        order = self.class_order
        return [c for c in order if c in present] + sorted(present - set(order))

    @property
    def visual_ceiling(self) -> float | None:
        """The best accuracy any visual-only classifier can reach, where the dataset declares it."""
        value = self.dataset.get("visual_ceiling")
        return None if value is None else float(value)


__all__ = ["DATASET", "EXTRACT", "SETTINGS", "StoreConfig"]
