"""The eval folder (contracts/evalfolder.py): where an evaluation is, and its results.json read
back from the folder, the run or the file, with damage named by file."""

from __future__ import annotations

import json

import pytest

from afgen.contracts.evalfolder import RESULTS, eval_folder, load_results
from afgen.errors import RunError


def test_the_test_split_is_run_eval_and_another_split_has_its_own_folder(tmp_path):
    assert eval_folder(tmp_path / "run") == tmp_path / "run" / "eval"
    assert eval_folder(tmp_path / "run", "test") == tmp_path / "run" / "eval"
    assert eval_folder(tmp_path / "run", "val") == tmp_path / "run" / "eval-val"


def test_results_are_found_from_the_folder_the_run_or_the_file(tmp_path):
    folder = eval_folder(tmp_path / "run")
    folder.mkdir(parents=True)
    (folder / RESULTS).write_text(json.dumps({"rates": {"1": {}}, "split": "test"}))
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / RESULTS).write_text(json.dumps({"rates": {}, "split": "val"}))
    assert load_results(tmp_path / "run")["split"] == "test"  # a run: its RUN/eval
    assert load_results(folder)["split"] == "test"
    assert load_results(folder / RESULTS)["split"] == "test"
    assert load_results(other)["split"] == "val"  # a folder from `afgen evaluate --out`


def test_a_missing_damaged_or_foreign_results_file_is_named(tmp_path):
    with pytest.raises(RunError, match="no results.json here; evaluate the run first"):
        load_results(tmp_path)
    (tmp_path / RESULTS).write_text("{ half written")
    with pytest.raises(RunError, match="damaged: not valid JSON") as damaged:
        load_results(tmp_path)
    assert str(tmp_path / RESULTS) in str(damaged.value)
    (tmp_path / RESULTS).write_text(json.dumps({"weights": 1}))
    with pytest.raises(RunError, match="not the results.json of an evaluation"):
        load_results(tmp_path)
