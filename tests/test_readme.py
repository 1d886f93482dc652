"""The README's Python examples run as written (on a tiny store in place of the user's)."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_every_import_in_the_readme_resolves():
    imports = [line for block in BLOCKS for line in block.splitlines() if line.startswith(("from afgen", "import afgen"))]
    assert imports
    for line in imports:
        exec(line, {})


def test_the_feature_reading_example_runs(tiny_store, monkeypatch):
    block = next(b for b in BLOCKS if "FeatureDataset" in b)
    monkeypatch.chdir(tiny_store)  # its store is ./features
    namespace: dict = {}
    exec(block, namespace)
    assert namespace["v_c"].shape[0] == namespace["labels"].shape[0] > 0
    assert set(namespace["clip"]) >= {"v_r", "v_f", "v_c"}


def test_ci_runs_the_readmes_install_command():
    install = re.search(r"```\n(pip install [^\n]*)\n```", README).group(1)
    assert "afgen demo" in install and "--no-deps aisfx" in install
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert f"\n{install}\n" in ci
