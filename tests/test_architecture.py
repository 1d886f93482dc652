"""The layers of docs/architecture.md, checked on every run rather than remembered."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import afgen
from afgen.cli import app

ROOT = Path(__file__).parent.parent


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: pip install -e '.[dev]'")
    result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_import_circles_even_inside_functions():
    import grimp

    graph = grimp.build_graph("afgen", cache_dir=None)
    modules = sorted(graph.modules)
    circles = []
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            # a package's __init__ importing its own submodules is how packages work, not a circle
            if importer.startswith(imported + ".") or imported.startswith(importer + "."):
                continue
            if graph.chain_exists(importer=imported, imported=importer, as_packages=False):
                circles.append((importer, imported))
    assert circles == []


def test_no_source_file_is_over_400_lines():
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in (ROOT / "src").rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}


def test_help_lists_exactly_the_commands():
    """The command list itself (not the words anywhere in the help text): every command, once."""
    commands = typer.main.get_command(app).commands
    assert set(commands) == {"synth", "frames", "extract", "export", "train", "evaluate", "compare", "predict", "export-model",
                             "demo", "verify", "methods"}
    for name, command in commands.items():
        assert command.help, f"`afgen {name}` has no help text"


def test_the_training_and_scoring_loops_know_no_stage_or_method_by_name():
    """train.py, run_loader.py and evaluate.py only loop over the registry (learning/method_registry.py):
    no string literal there names a registered stage, method or model class, and no branch
    tests a kind."""
    import ast

    from afgen.learning.method_registry import registry

    reg = registry()
    names = set(reg.stages) | set(reg.methods) | set(reg.models)
    learning = Path(afgen.__file__).parent / "learning"
    for module in ("train.py", "run_loader.py", "evaluate.py"):
        text = (learning / module).read_text()
        literals = {node.value for node in ast.walk(ast.parse(text))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        named = sorted(literals & names)
        if module == "run_loader.py":  # the format-2 reader names the model classes runs of that format hold
            named = [n for n in named if n not in {"lstm_generator", "lstm_frame_generator", "av_classifier"}]
        assert not named, f"{module} names {named}: resolve them through the registry"
        assert "kind ==" not in text and ".kind" not in text, module
