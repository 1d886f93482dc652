"""load_run (learning/run_loader.py): a run's models rebuilt from RUN/model.pt, for both formats a
run may hold: format 3 (each model's record: registered class and arguments) and format 2
(tests/data/premove/run, written before records: the classes inferred from the weights)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import torch

from afgen.config import TrainConfig, to_dict
from afgen.contracts.modelfile import BUNDLE, BUNDLE_FORMAT
from afgen.learning.models import AudioVisualClassifier, SoundFeatureGenerator
from afgen.learning.run_loader import load_run

PREMOVE_RUN = Path(__file__).parent.parent / "data" / "premove" / "run"


def test_a_format_2_model_pt_still_loads_every_model_with_its_weights():
    bundle = torch.load(PREMOVE_RUN / BUNDLE, weights_only=True)
    assert bundle["format"] == 2 and "records" not in bundle  # what this test is about
    trained = load_run(PREMOVE_RUN)
    assert set(trained.models) == set(bundle["models"])
    for name, model in trained.models.items():
        expected = SoundFeatureGenerator if name.startswith("generator") else AudioVisualClassifier
        assert type(model) is expected, name
        assert not model.training, name
        assert model.state_dict().keys() == bundle["models"][name].keys(), name
        for key, value in bundle["models"][name].items():
            torch.testing.assert_close(model.state_dict()[key], value)
        if isinstance(model, AudioVisualClassifier):
            assert (model.token is not None) == (name in bundle["tokens"]), name
    assert trained.classes == bundle["classes"] and trained.train.hidden == bundle["train"]["hidden"] == 4
    assert trained.store_config == json.loads(bundle["store_config"])
    assert trained.generator is trained.models["generator"] and trained.fusion is trained.models["fusion"]
    assert trained.path == PREMOVE_RUN


def _write_format_3(run: Path, records: dict[str, dict], models: dict[str, torch.nn.Module],
                    classes: tuple[str, ...] = ("a", "b", "c")) -> None:
    run.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.save({"format": BUNDLE_FORMAT, "models": {k: m.state_dict() for k, m in models.items()}, "records": records,
                "classes": list(classes), "dims": {}, "train": to_dict(TrainConfig(hidden=6)),
                "features": str(run / "features"), "store_config": json.dumps({"settings": {"dtype": "float16"}})},
               buffer)
    (run / BUNDLE).write_bytes(buffer.getvalue())


def test_a_format_3_record_rebuilds_its_class_with_its_arguments_and_weights(tmp_path):
    torch.manual_seed(0)
    generator = SoundFeatureGenerator(10, 3, 4, hidden=6, dropout=0.1, input_dropout=0.0)
    fusion = AudioVisualClassifier(10, 3, 4, hidden=5, missing_token=True)
    with torch.no_grad():
        fusion.token.copy_(torch.arange(4.0))
    records = {"generator": generator.afgen_record, "fusion": fusion.afgen_record}
    assert records["fusion"] == {"model": "av_classifier", "args": {"input_dim": 10, "num_classes": 3, "audio_dim": 4,
                                                                   "hidden": 5, "dropout": TrainConfig.dropout,
                                                                   "missing_token": True}}
    _write_format_3(tmp_path / "run", records, {"generator": generator, "fusion": fusion})
    trained = load_run(tmp_path / "run")
    assert trained.classes == ["a", "b", "c"] and trained.train == TrainConfig(hidden=6)
    assert trained.store_config == {"settings": {"dtype": "float16"}} and trained.features == tmp_path / "run" / "features"
    for name, original in (("generator", generator), ("fusion", fusion)):
        model = trained.models[name]
        assert type(model) is type(original) and model.afgen_record == original.afgen_record and not model.training
        for key, value in original.state_dict().items():
            torch.testing.assert_close(model.state_dict()[key], value)
    torch.testing.assert_close(trained.fusion.token, torch.arange(4.0))
    v, lengths = torch.randn(2, 3, 10), torch.tensor([3, 2])
    with torch.no_grad():
        torch.testing.assert_close(trained.generator(v, lengths)[0], generator.eval()(v, lengths)[0])


def test_a_model_of_a_class_nothing_registers_is_skipped_with_a_warning(tmp_path, caplog):
    generator = SoundFeatureGenerator(10, 3, 4, hidden=6)
    records = {"generator": generator.afgen_record, "plugin_stage": {"model": "uninstalled_plugin_model", "args": {}}}
    _write_format_3(tmp_path / "run", records, {"generator": generator, "plugin_stage": generator})
    with caplog.at_level(logging.WARNING):
        trained = load_run(tmp_path / "run")
    assert set(trained.models) == {"generator"}
    assert "plugin_stage: uninstalled_plugin_model" in caplog.text


def test_a_multi_seed_run_loads_its_first_listed_seed(tmp_path):
    generator = SoundFeatureGenerator(10, 3, 4, hidden=6)
    for seed in ("seed-1", "seed-0"):  # each seed's bundle told apart by its class names
        _write_format_3(tmp_path / "multi" / seed, {"generator": generator.afgen_record}, {"generator": generator},
                        classes=(seed, "x", "y"))
    (tmp_path / "multi" / "seeds.json").write_text(json.dumps({"runs": ["seed-1", "seed-0"]}))
    trained = load_run(tmp_path / "multi")
    assert trained.path == tmp_path / "multi" / "seed-1" and trained.classes == ["seed-1", "x", "y"]


@pytest.mark.parametrize("damage", ["missing", "not a bundle"])
def test_a_missing_or_foreign_model_pt_is_refused_by_name(tmp_path, damage):
    from afgen.errors import RunError

    (tmp_path / "run").mkdir()
    if damage == "not a bundle":
        torch.save({"weights": 1}, tmp_path / "run" / BUNDLE)
    with pytest.raises(RunError, match="model.pt|not a finished run"):
        load_run(tmp_path / "run")
