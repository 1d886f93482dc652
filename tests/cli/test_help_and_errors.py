"""The CLI says the right thing, fast: help shows what it says (brackets and all) and the
allowed values of every choice; a bad argument is refused before torch loads; the errors
name what is wrong."""

from __future__ import annotations

import re
import resource
import subprocess
import typing

import pytest
import typer
from conftest import afgen_loading, loaded
from typer.testing import CliRunner

from afgen.cli import app, main

COMMANDS = typer.main.get_command(app).commands


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_brackets_and_allowed_values_as_written(name):
    command = COMMANDS[name]
    result = CliRunner().invoke(app, [name, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for token in re.findall(r"[\w\"`.-]*\[[^\]\s]+\][\w\"`.-]*", " ".join(texts)):
        assert token in shown, f"`afgen {name} --help` lost {token!r}"
    for param in command.params:
        for value in _choices(param):
            assert str(value) in shown, f"`afgen {name} --help` does not list {value!r} for {param.name}"


def _choices(param) -> tuple:
    annotation = param.type_descriptor.annotation
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()


def test_choice_options_are_choices():
    names = {p.name: p for p in COMMANDS["extract"].params}
    for option in ("flow", "flow_encoding", "dis_preset", "audio", "precision", "runtime", "dtype", "engine", "layout"):
        assert _choices(names[option]), option
    assert "extractors" in " ".join(CliRunner().invoke(app, ["extract", "--help"], terminal_width=100).output.split())


def test_a_typo_is_refused_before_torch_loads(tmp_path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(afgen_loading("extract", "x", "y", "--flow", "farnback"), capture_output=True, text=True,
                            cwd=tmp_path)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert result.returncode == 2 and not loaded(result.stderr), result.stdout + result.stderr
    assert "farneback" in result.stderr and "raft_small" in result.stderr
    # the process's own CPU time (typically 0.3 s here), not wall time: a loaded machine cannot fail it
    assert cpu < 1.5 * 3


def _error(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_train_on_a_folder_that_is_not_a_store_says_so_and_creates_nothing(tmp_path, capsys):
    err = _error(["train", str(tmp_path / "missing"), str(tmp_path / "run")], capsys)
    assert "no such folder" in err and "afgen extract" in err
    (tmp_path / "empty").mkdir()
    err = _error(["train", str(tmp_path / "empty"), str(tmp_path / "run")], capsys)
    assert "not a feature store" in err and "verify" not in err
    assert not (tmp_path / "run").exists()


def test_train_methods_refuses_an_unknown_row_before_training_and_names_the_known_ones(tiny_store, tmp_path, capsys):
    err = _error(["train", str(tiny_store / "features"), str(tmp_path / "run"), "--methods", "av_generated,nope"], capsys)
    assert "no such method: nope" in err and "av_transformer_token" in err
    assert not (tmp_path / "run").exists()


def test_evaluate_a_missing_run_says_no_such_folder(tmp_path, capsys):
    err = _error(["evaluate", str(tmp_path / "nowhere")], capsys)
    assert "no such run folder" in err and "model.pt" not in err


def test_predict_without_a_model_asks_for_one(tmp_path, capsys):
    err = _error(["predict", str(tmp_path / "clip.mp4")], capsys)
    assert "--run RUN" in err and "--onnx DIR" in err and "not both" not in err


def test_literal_choices_come_from_the_registries():
    from afgen.cli.app import AudioName, FlowName
    from afgen.encoders.registry import AUDIO, FLOWS

    assert typing.get_args(FlowName) == tuple(FLOWS.names())
    assert typing.get_args(AudioName) == tuple(AUDIO.names())
