"""contracts/modelfile.py: RUN/model.pt written and read in one place, format 3 round trip,
format 2 (tests/data/premove/run) still read, the bytes train wrote before the contract moved."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from afgen.contracts.modelfile import BUNDLE, BUNDLE_FORMAT, ModelFile, read_model_file, write_model_file
from afgen.errors import RunError

PREMOVE_RUN = Path(__file__).parent.parent / "data" / "premove" / "run"


def _model_file(tmp_path: Path) -> ModelFile:
    torch.manual_seed(0)
    return ModelFile(models={"generator": {"w": torch.randn(2, 3)}, "fusion": {"b": torch.arange(4.0)}},
                     records={"generator": {"model": "lstm_generator", "args": {"hidden": 6}}},
                     classes=["a", "b"], dims={"input_dim": 3, "num_classes": 2, "audio_dim": 4, "frame_bands": None},
                     train={"hidden": 6}, features=tmp_path / "features",
                     store_config={"settings": {"dtype": "float16"}})


def test_format_3_round_trip(tmp_path):
    written = _model_file(tmp_path)
    path = write_model_file(tmp_path, written)
    assert path == tmp_path / BUNDLE
    read = read_model_file(path)
    assert read.format == BUNDLE_FORMAT == 3 and read.tokens == [] and read.frame_models == []
    assert (read.records, read.classes, read.dims, read.train, read.features, read.store_config) == (
        written.records, written.classes, written.dims, written.train, written.features, written.store_config)
    assert read.models.keys() == written.models.keys()
    for name, state in written.models.items():
        for key, value in state.items():
            torch.testing.assert_close(read.models[name][key], value)


def test_the_bytes_are_those_train_wrote_before_the_contract_owned_them(tmp_path):
    """Same run bytes: the dict train.py used to save inline, key for key and in the same order."""
    m = _model_file(tmp_path)
    buffer = io.BytesIO()
    torch.save({"format": 3, "models": m.models, "records": m.records, "classes": m.classes, "dims": m.dims,
                "train": m.train, "features": str(m.features), "store_config": json.dumps(m.store_config)}, buffer)
    assert write_model_file(tmp_path, m).read_bytes() == buffer.getvalue()


def test_format_2_still_reads(tmp_path):
    read = read_model_file(PREMOVE_RUN / BUNDLE)
    raw = torch.load(PREMOVE_RUN / BUNDLE, weights_only=True)
    assert read.format == 2 and read.records == {} and read.tokens == raw["tokens"] == ["fusion_token"]
    assert read.classes == raw["classes"] and read.dims == raw["dims"] and read.features == Path(raw["features"])
    assert read.store_config == json.loads(raw["store_config"]) and read.store_config["settings"]["backbone"]
    assert set(read.models) == set(raw["models"])


@pytest.mark.parametrize("drop", ["classes", "store_config", "models"])
def test_a_bundle_missing_a_key_is_a_run_error_naming_model_pt(tmp_path, drop):
    path = write_model_file(tmp_path, _model_file(tmp_path))
    bundle = torch.load(path, weights_only=True)
    del bundle[drop]
    torch.save(bundle, path)
    with pytest.raises(RunError, match=rf"model.pt: damaged \(KeyError: '{drop}'\); .*--resume"):
        read_model_file(path)
