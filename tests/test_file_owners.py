"""Each file format is parsed by the module that owns it (issue 28): config.json's sections,
model.pt's keys and export.json's only in contracts/ (storeconfig.py, modelfile.py,
exportfolder.py), the weights identity a store records only in encoders/weights.py."""

from __future__ import annotations

import re
from pathlib import Path

import afgen

SRC = Path(afgen.__file__).parent
#: model.pt's own keys (those no other afgen file shares: meta.json also has "store_config", "format").
MODEL_PT_KEYS = re.compile(r"""\[\s*["'](records|models|tokens|frame_models|dims)["']\s*\]"""
                           r"""|\.get\(\s*["'](records|models|tokens|frame_models|dims)["']""")
#: A weights identity spelled out: "random:...", f"file:{...}", .startswith("torchvision:") ...
#: ("timm:" alone is also a backbone name's prefix, so only timm's identity form counts).
IDENTITY = re.compile(r"""f?["'](random|torchvision|package|hf|torchvggish|file|folder):|f["']timm:\{[^}]*\}:""")


def hand_parsers(pattern: re.Pattern[str], owner: Path, root: Path = SRC) -> dict[str, list[int]]:
    """file -> line numbers outside `owner` (a module or a folder of root) where `pattern` occurs."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel == owner or owner in rel.parents:
            continue
        hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
        if hits:
            found[str(rel)] = hits
    return found


def test_no_module_outside_contracts_indexes_model_pt_by_hand():
    assert hand_parsers(MODEL_PT_KEYS, Path("contracts")) == {}, (
        "read and write RUN/model.pt through afgen.contracts.modelfile (ModelFile)")


def test_no_module_outside_encoders_weights_spells_a_weights_identity():
    assert hand_parsers(IDENTITY, Path("encoders/weights.py")) == {}, (
        "write a weights identity with encoders.weights' *_id functions and read it with spec_for")


def test_the_greps_find_what_they_forbid(tmp_path):
    """A hand-parsing line in a copy of the package is found (the two tests above can fail)."""
    (tmp_path / "contracts").mkdir()
    (tmp_path / "encoders").mkdir()
    (tmp_path / "contracts" / "modelfile.py").write_text('records = bundle["records"]\n')
    (tmp_path / "encoders" / "weights.py").write_text('RANDOM_ID = "random:seed=0"\n')
    (tmp_path / "trained.py").write_text('x = 1\nrecords = bundle.get("records") or {}\nd = bundle["dims"]\n')
    (tmp_path / "predict.py").write_text('if ident.startswith("torchvision:"):\n    pass\nname = "timm:"\n'
                                         'ident = f"timm:{arch}:{tag}"\nfound = f"file:{p.name}"\n')
    assert hand_parsers(MODEL_PT_KEYS, Path("contracts"), tmp_path) == {"trained.py": [2, 3]}
    assert hand_parsers(IDENTITY, Path("encoders/weights.py"), tmp_path) == {"predict.py": [1, 4, 5]}


#: export.json's keys read by hand (an export folder's meta is read through contracts/exportfolder.py).
EXPORT_KEYS = re.compile(r"""\[\s*["'](files|store_config|format)["']\s*\]|\.get\(\s*["'](files|format)["']""")


def test_no_module_outside_contracts_indexes_export_json_by_hand():
    assert hand_parsers(EXPORT_KEYS, Path("contracts")) == {}, (
        "read an export folder's export.json through afgen.contracts.exportfolder.read_export")


#: config.json's sections indexed by hand.
CONFIG_SECTIONS = re.compile(r"""\[\s*["'](settings|extract|dataset)["']\s*\]|\.get\(\s*["'](settings|extract|dataset)["']""")


def test_no_module_outside_contracts_indexes_config_json_by_hand():
    """Its sections are read through StoreConfig and laid out by new_store_config (contracts/storeconfig.py)."""
    assert hand_parsers(CONFIG_SECTIONS, Path("contracts")) == {}, (
        "read config.json through afgen.contracts.storeconfig.StoreConfig")
