"""contracts/exportfolder.py: export.json written and read by one module (issue 28), without torch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afgen.contracts.exportfolder import META, read_export, write_export_meta
from afgen.errors import AfgenError


def test_export_json_round_trip(tmp_path):
    files = [tmp_path / "generator.onnx", tmp_path / "classifier.onnx"]
    config = {"settings": {"backbone": "resnet18"}}
    write_export_meta(tmp_path, "onnx", files, ["a", "b"], {"input_dim": 4}, Path("/runs/r"), config, {"x": 0.0})
    export = read_export(tmp_path)
    assert (export.format, export.classes, export.store_config) == ("onnx", ["a", "b"], config)
    assert export.path("generator") == files[0] and export.path("classifier") == files[1]
    assert str(tmp_path / META) in export.source
    assert json.loads((tmp_path / META).read_text())["run"] == "/runs/r"


def test_a_missing_or_damaged_export_json_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(AfgenError, match=r"no export.json.*afgen export-model RUN OUT"):
        read_export(tmp_path)
    (tmp_path / META).write_text(json.dumps({"format": "onnx", "files": {}}))
    with pytest.raises(AfgenError, match=r"export.json: damaged: export.json lacks 'classes'"):
        read_export(tmp_path)
