"""The method API's registry: dependency order, registration from code and from installed
packages (entry points), a broken plug-in as one line, models rebuilt from their records."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN

from afgen.config import EvalConfig
from afgen.errors import AfgenError
from afgen.learning import method_registry as R
from afgen.learning.fills import ZERO
from afgen.learning.method_registry import Method, Registry, Stage, load_plugins, rebuild, register_model, registry

EXAMPLE = Path(__file__).parents[2] / "examples" / "afgen-late-fusion"


def _noop(ctx):
    raise AssertionError("not trained here")


@pytest.fixture()
def clean_registry():
    """The global registry as it was, whatever a test registers."""
    reg = registry()
    saved = dict(reg.stages), dict(reg.methods), dict(reg.models), dict(reg.broken)
    yield reg
    reg.stages, reg.methods, reg.models, reg.broken = (dict(d) for d in saved)


def test_stages_come_after_what_they_need_and_only_what_the_rows_need():
    reg = Registry()
    for stage in (Stage("c", "", _noop, needs=("b",)), Stage("a", "", _noop), Stage("b", "", _noop, needs=("a",)),
                  Stage("d", "", _noop)):
        reg.stages[stage.name] = stage
    reg.methods["row_c"] = Method("row_c", "C", "c", ZERO)
    assert [s.name for s in reg.order(["c"])] == ["a", "b", "c"]
    assert [s.name for s in reg.stages_for(None)] == ["a", "b", "c", "d"]
    assert [s.name for s in reg.stages_for(["row_c"])] == ["a", "b", "c"]  # not d
    with pytest.raises(AfgenError, match="no such method: nope"):
        reg.stages_for(["nope"])
    reg.stages["a"] = Stage("a", "", _noop, needs=("c",))
    with pytest.raises(AfgenError, match="circle: c -> b -> a -> c"):
        reg.order(["c"])
    reg.stages["a"] = Stage("a", "", _noop, needs=("ghost",))
    with pytest.raises(AfgenError, match="needs the stage 'ghost'"):
        reg.order(["a"])


def test_the_built_in_rows_need_what_they_are_scored_with():
    reg = registry()
    assert reg.paper().key == "av_generated" and reg.methods["av_generated"].needs == ("fusion", "generator")
    assert [s.name for s in reg.stages_for(["av_generated_through"])] == ["generator", "fusion", "generator_av"]
    assert {"av_transformer_token", "av_reconstructed"} <= set(reg.methods)
    assert all(m.source == R.BUILT_IN for m in reg.methods.values())


def test_registering_from_code_adds_a_row_after_the_built_ins_and_refuses_a_taken_name(clean_registry):
    stage = R.register_stage(Stage("mine", "my stage", _noop, needs=["generator"]))
    R.register_method(Method("my_row", "My row", "mine", ZERO))
    assert list(clean_registry.methods)[-1] == "my_row" and stage.source == R.YOUR_CODE and stage.needs == ("generator",)
    with pytest.raises(AfgenError, match="already registered"):
        R.register_method(Method("my_row", "again", "mine", ZERO))
    R.register_method(Method("my_row", "replaced", "mine", ZERO), replace=True)
    assert clean_registry.methods["my_row"].label == "replaced"


def test_a_model_records_its_class_and_arguments_and_is_rebuilt_from_them(clean_registry):
    @register_model("test_tiny")
    class Tiny(torch.nn.Module):
        def __init__(self, width: int, scale: float = 2.0) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(width, 1)
            self.scale = scale

    class Unregistered(Tiny):
        pass

    model = Tiny(3)
    assert model.afgen_record == {"model": "test_tiny", "args": {"width": 3, "scale": 2.0}}
    again = rebuild(model.afgen_record)
    assert type(again) is Tiny and again.layer.in_features == 3 and again.scale == 2.0
    assert not hasattr(Unregistered(2), "afgen_record")  # a subclass must register itself
    with pytest.raises(AfgenError, match="'nope', which nothing registers"):
        rebuild({"model": "nope", "args": {}})


def _dist_info(root: Path, name: str, module: str) -> Path:
    """What `pip install` leaves for importlib.metadata: a dist-info folder declaring the entry point."""
    info = root / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{R.ENTRY_POINT_GROUP}]\n{name} = {module}\n")
    return root


def test_a_broken_plugin_is_one_line_and_takes_back_what_it_registered(clean_registry, tmp_path, monkeypatch, caplog):
    (tmp_path / "half_done.py").write_text(
        "from afgen.learning.method_registry import Method, register_method\n"
        "from afgen.learning.fills import ZERO\n"
        "register_method(Method('half_row', 'Half', 'generator', ZERO))\n"
        "raise ImportError('needs a package that is not installed')\n")
    monkeypatch.syspath_prepend(str(_dist_info(tmp_path, "afgen-half", "half_done")))
    with caplog.at_level(logging.WARNING):
        load_plugins()
    lines = [r.getMessage() for r in caplog.records if "afgen-half" in r.getMessage()]
    assert lines == ["the afgen.methods plugin 'afgen-half' (half_done) failed to load and is skipped: ImportError: "
                     "needs a package that is not installed"]
    assert "half_row" not in clean_registry.methods and "afgen-half" in clean_registry.broken


def test_the_example_plugin_adds_a_row_to_a_fresh_run_and_leaves_with_it(clean_registry, tiny_store, tmp_path,
                                                                        monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(_dist_info(tmp_path / "site", "afgen-late-fusion", "afgen_late_fusion")))
    load_plugins()
    row = clean_registry.methods["av_late_fusion"]
    assert row.source == "afgen-late-fusion (plugin 'afgen-late-fusion')"
    from afgen.learning.evaluate import evaluate
    from afgen.learning.train import train

    run = tmp_path / "run"
    train(tiny_store / "features", run, replace(TINY_TRAIN, epochs=2, methods=("av_late_fusion", "visual_only")),
          show_progress=False)
    assert json.loads((run / "provenance.json").read_text())["stages"]["late_fusion"]["source"] == row.source
    result = evaluate(run, cfg=EvalConfig(missing_rates=(0.0, 1.0), bootstrap=200, mask_draws=2))
    assert set(result.results["methods"]) == {"visual_only", "av_late_fusion"}  # what --methods asked for
    assert row.label in (result.out / "results.md").read_text()
    cell = result.results["rates"]["1"]["av_late_fusion"]["top1"]
    assert cell["low"] <= cell["value"] <= cell["high"]
    assert result.results["comparisons"]["1"]["av_late_fusion"]["visual_only"]["verdict"] in (
        "better", "worse", "no resolvable difference")
    # uninstalled: the run still loads and evaluates, without the row
    del clean_registry.methods["av_late_fusion"], clean_registry.stages["late_fusion"], clean_registry.models["late_fusion"]
    again = evaluate(run, cfg=EvalConfig(missing_rates=(0.0, 1.0), bootstrap=200, mask_draws=2), out=tmp_path / "e")
    assert list(again.results["methods"]) == ["visual_only"]


@pytest.mark.slow
def test_afgen_methods_lists_every_row_its_source_and_what_it_needs():
    out = subprocess.run([sys.executable, "-m", "afgen", "methods"], capture_output=True, text=True, check=True,
                         env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"}).stdout
    for key in registry().methods:
        assert key in out
    line = next(row for row in out.splitlines() if "av_generated_through" in row)
    assert "generator, fusion, generator_av" in line and "built-in" in line


def test_a_failing_stage_of_your_own_is_one_line_and_the_other_rows_still_train(clean_registry, tiny_store, tmp_path,
                                                                               caplog):
    def broken(ctx):
        raise RuntimeError("my idea has a bug")

    R.register_stage(Stage("buggy", "a stage that fails", broken))
    R.register_stage(Stage("after_buggy", "needs it", _noop, needs=("buggy",)))
    R.register_method(Method("buggy_row", "Buggy", "after_buggy", ZERO))
    from afgen.learning.run_loader import load_run
    from afgen.learning.train import train

    with caplog.at_level(logging.ERROR):
        train(tiny_store / "features", tmp_path / "run",
              replace(TINY_TRAIN, epochs=1, methods=("visual_only", "buggy_row")), show_progress=False)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("'buggy' (from your code" in e and "RuntimeError: my idea has a bug" in e for e in errors)
    assert any("'after_buggy' is skipped: it needs buggy" in e for e in errors)
    assert set(load_run(tmp_path / "run").models) == {"generator"}
