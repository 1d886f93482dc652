"""config.json through its typed reader (contracts/storeconfig.py): the sections and values the
readers use, on the store written before the wings split (tests/data/premove) and on a bare one;
and no module outside contracts/ indexes the file's sections by hand."""

from __future__ import annotations

import json
from pathlib import Path

from afgen.contracts.store import FeatureStore
from afgen.contracts.storeconfig import StoreConfig

PREMOVE = Path(__file__).parent.parent / "data" / "premove" / "features"


def test_the_sections_and_values_of_a_real_config_json():
    raw = json.loads((PREMOVE / "config.json").read_text())
    config = FeatureStore(PREMOVE).store_config()
    assert config.raw == raw
    assert config.settings is config.raw["settings"] and config.settings["backbone"] == "resnet18"
    assert config.extract["weights_arg"] == "none" and config.dataset["layout"] == "folders"
    assert config.audio_dim == 128 and config.dtype == "float16"
    assert config.class_order == ["bounce", "roll"] and config.visual_ceiling is None


def test_a_config_without_provenance_reads_as_empty_sections_and_the_defaults():
    config = StoreConfig({"settings": {"audio": {"dim": "64"}}})
    assert config.extract == {} and config.dataset == {} and config.class_order == []
    assert config.audio_dim == 64 and config.dtype == "float32"  # stores from before dtype was recorded


def test_the_class_order_is_the_datasets_then_the_rest_sorted():
    config = StoreConfig({"settings": {}, "dataset": {"classes": ["zeta", "alpha", "absent"], "visual_ceiling": 0.75}})
    assert config.classes_of(["beta", "alpha", None, "zeta", "aaa", "alpha"]) == ["zeta", "alpha", "aaa", "beta"]
    assert StoreConfig({"settings": {}}).classes_of(["b", "a"]) == ["a", "b"]
    assert config.visual_ceiling == 0.75
