"""An exported model folder: the contract between `afgen export-model` (export/model.py, which
writes it) and its readers (`afgen predict --onnx`). The file that describes the export (written
by `write_export_meta`, read by `read_export`), and an ONNX Runtime session for one of its
graphs. Imports neither torch nor onnxruntime until asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afgen.contracts.store import atomic_write_json, read_json
from afgen.errors import AfgenError

#: What the export holds: format, file names, classes, dimensions, the store's config.
META = "export.json"
#: How to install what exporting and running an export need.
INSTALL = 'pip install "afgen[export]"'


@dataclass(frozen=True)
class ExportedModel:
    """What export.json says of an export: its format, its graphs' files, the classes and the
    feature store's config.json the run was trained on (so prediction needs no run)."""

    folder: Path
    format: str  # onnx | torchscript
    files: dict[str, str]  # generator, classifier -> file name in the folder
    classes: list[str]
    store_config: dict[str, Any]

    @property
    def source(self) -> str:
        """Where the store's config was read, for errors that name it."""
        return f"{self.folder / META} (store_config)"

    def path(self, graph: str) -> Path:
        return self.folder / self.files[graph]


def write_export_meta(out: Path, fmt: str, files: list[Path], classes: list[str], dims: dict, run: Path,
                      store_config: dict, difference: dict) -> Path:
    """OUT/export.json for an export of `run` (its generator's and classifier's graphs in `files`)."""
    atomic_write_json(out / META, {
        "format": fmt, "files": {"generator": files[0].name, "classifier": files[1].name},
        "classes": classes, "dims": dims, "run": str(run),
        "store_config": store_config,  # extraction settings, so `predict --onnx` needs no run
        "inputs": {"generator": ["v_c [B, T, input_dim] float32", "lengths [B] int64"],
                   "classifier": ["v_c", "lengths", "audio [B, audio_dim] float32 (raw store space)"]},
        "outputs": {"generator": ["logits [B, num_classes]", "audio [B, audio_dim] (raw store space)"],
                    "classifier": ["logits [B, num_classes]"]},
        "difference_vs_pytorch": difference,
    })
    return out / META


def read_export(folder: str | Path) -> ExportedModel:
    """export.json of an export folder; a missing or damaged one names the file and the fix."""
    folder = Path(folder)
    fix = "rerun `afgen export-model RUN OUT`"
    meta = read_json(folder / META, fix) if (folder / META).is_file() else None
    if meta is None:
        raise AfgenError(f"no {META}: not an `afgen export-model` folder; {fix}", folder)
    try:
        return ExportedModel(folder, str(meta["format"]), dict(meta["files"]), list(meta["classes"]),
                             dict(meta["store_config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise AfgenError(f"damaged: {META} lacks {exc}; {fix}", folder / META) from None


def onnx_session(path: Path):
    """An onnxruntime CPU session for an exported file; a clear error without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise AfgenError(f"running an exported model needs onnxruntime: {INSTALL}") from None
    if not path.is_file():
        raise AfgenError("no exported model here; run `afgen export-model RUN OUT` first", path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
