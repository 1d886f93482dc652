"""The engine table: one interface for every engine, so a new engine is one module and one
entry in config.ENGINES, and extract / predict look engines up instead of naming them."""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from afgen import config
from afgen.config import ExtractConfig, VideoConfig
from afgen.contracts.store import FeatureStore
from afgen.errors import AfgenError
from afgen.extraction.assemble import features_in_process
from afgen.extraction.dataset import discover
from afgen.extraction.engines.interface import Plan, engine
from afgen.extraction.engines.pool import producer_settings
from afgen.extraction.extract import extract

FAST = ExtractConfig(backbone="resnet18", weights="none", workers=0, batch_size=4, precision="fp32", runtime="torch")
SMALL = VideoConfig(height=32, width=32)
SRC = Path(__file__).resolve().parents[3] / "src" / "afgen"


class FakeEngine:
    """An engine of one's own: each clip in this process, one at a time, recording what it was
    given. It stands in for a module (the table names modules)."""

    def __init__(self) -> None:
        self.requests, self.ran = [], []

    def plan(self, request):
        self.requests.append(request)
        return Plan(request.cfg, producer_settings(request.cfg, request.video, request.flow, request.audio),
                    notice="fake: one clip at a time")

    def run(self, todo, job):
        self.ran.append([c.id for c in todo])
        for clip in todo:
            try:
                yield "done", clip.id, features_in_process(clip.id, clip.path, job.backbone, job.settings, job.raft)
            except AfgenError as exc:
                yield "failed", clip.id, {}, str(exc)


@pytest.fixture()
def fake_engine(monkeypatch) -> FakeEngine:
    """FakeEngine registered in the table as `fake`."""
    fake = FakeEngine()
    monkeypatch.setitem(sys.modules, "afgen_test_fake_engine", fake)
    monkeypatch.setitem(config.ENGINES, "fake", "afgen_test_fake_engine")
    return fake


def test_a_new_engine_is_one_module_and_one_entry_and_extract_uses_it(tmp_path, clip_factory, fake_engine):
    clip_factory("data/run/a.mp4", fps=25, seconds=1.0)
    clip_factory("data/jump/c.mp4", fps=24, seconds=1.0, audio=False)
    (tmp_path / "data" / "jump" / "broken.mp4").write_bytes(b"\x00" * 64)
    ds = discover(tmp_path / "data")
    summary = extract(ds, tmp_path / "fake", replace(FAST, engine="fake"), SMALL, show_progress=False)
    assert (summary.done, summary.failed) == (2, 1) and summary.runtime_choice == "fake: one clip at a time"
    assert fake_engine.ran == [["jump__broken", "jump__c", "run__a"]] and fake_engine.requests[0].n_clips == 3
    # the store is written as by the local engine: the same clip files, manifest and settings
    extract(ds, tmp_path / "local", FAST, SMALL, show_progress=False)
    fake, local = FeatureStore(tmp_path / "fake"), FeatureStore(tmp_path / "local")
    assert fake.config()["extract"]["engine"] == "fake" and fake.config()["settings"] == local.config()["settings"]
    names = sorted(p.relative_to(local.root) for p in local.root.rglob("*.npy"))
    assert names and names == sorted(p.relative_to(fake.root) for p in fake.root.rglob("*.npy"))
    assert all((fake.root / n).read_bytes() == (local.root / n).read_bytes() for n in names)
    strip = ("seconds", "cpu_seconds", "written_at", "time")
    recs = [{i: {k: v for k, v in r.items() if k not in strip} for i, r in s.manifest.records().items()}
            for s in (fake, local)]
    broken = [r.pop("jump__broken") for r in recs]  # the fake keeps no meta of a failed clip
    assert recs[0] == recs[1] and len(recs[0]) == 2
    assert broken[0]["status"] == "failed" and broken[0]["error"] == broken[1]["error"]
    # rerun: nothing left to do, the engine is not asked to run anything
    again = extract(ds, tmp_path / "fake", replace(FAST, engine="fake"), SMALL, show_progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 2, 1) and fake_engine.ran[1:] == [["jump__broken"]]


def test_an_engine_not_in_the_table_is_refused_naming_the_table():
    with pytest.raises(AfgenError, match="engine .--engine. must be one of local, ray; got 'fake'"):
        ExtractConfig(engine="fake")
    with pytest.raises(AfgenError, match="must be one of local, ray; got 'fake'"):
        engine("fake")


@pytest.mark.parametrize("name", list(config.ENGINES))
def test_every_engine_in_the_table_has_the_one_interface(name):
    module = engine(name)  # imports without its optional package (Ray) installed
    assert list(inspect.signature(module.plan).parameters) == ["request"]
    assert list(inspect.signature(module.run).parameters) == ["todo", "job"]


def test_the_cli_offers_the_tables_engines():
    """An engine added to the table before the CLI is built is one --engine accepts."""
    import subprocess
    import sys

    code = ("from afgen import config; config.ENGINES['mine'] = 'my_engine_module'; import importlib, typing; "
            "print(typing.get_args(importlib.import_module('afgen.cli.app').Engine))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str((*config.ENGINES, "mine"))


@pytest.mark.parametrize("path", ["extraction/extract.py", "learning/predict_batch.py", "learning/predict.py"])
def test_extract_and_predict_name_no_engine(path):
    """They look the engine up in the table: no engine's name, module or branch on one."""
    code = (SRC / path).read_text()
    assert not re.findall(r"ray_data|engines import local|engines\.local\b|[\"'](ray|local)[\"']", code)
