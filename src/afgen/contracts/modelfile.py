"""RUN/model.pt, written and read here only: the contract between `afgen train` and the readers
of a trained run (learning/run_loader.py, `afgen verify`), in plain dicts and tensors (no model
classes: rebuilding them is the learning wing's job, from the records).

Format 3 (written): {"format": 3, "models": {stage: state dict, CPU tensors}, "records": {stage:
{"model": registered class name, "args": {...}}}, "classes": [...], "dims": {"input_dim",
"num_classes", "audio_dim", "frame_bands"}, "train": TrainConfig as a dict, "features": the
store's absolute path, "store_config": the store's config.json as a JSON string}. Format 2
(still read) has no "records"; its "tokens" (and "frame_models") name the models whose class
the reader infers from their weights. Loaded with weights_only=True.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afgen.contracts.runfolder import BUNDLE, damaged
from afgen.contracts.store import atomic_write_bytes
from afgen.errors import RunError, repair_hint

#: The format this afgen writes: 3 records each model's registered class and arguments
#: ("records"); format 2 (no records) is still read, its classes inferred from its weights.
BUNDLE_FORMAT = 3
READABLE_BUNDLE_FORMATS = (2, 3)


@dataclass(frozen=True)
class ModelFile:
    """What RUN/model.pt holds, by name (see the module docstring for the file's keys)."""

    models: dict[str, dict[str, Any]]  # stage -> state dict (tensors)
    records: dict[str, dict[str, Any]]  # stage -> {"model": class name, "args": {...}}; {} in format 2
    classes: list[str]
    dims: dict[str, Any]
    train: dict[str, Any]
    features: Path
    store_config: dict[str, Any]
    format: int = BUNDLE_FORMAT
    tokens: list[str] = field(default_factory=list)  # format 2: the classifiers with a missing-audio token
    frame_models: list[str] = field(default_factory=list)  # format 2: the per-frame models


def write_model_file(run: Path, model_file: ModelFile) -> Path:
    """Write RUN/model.pt (format 3) whole or not at all; return its path."""
    import torch  # here, so that reading a store's contracts does not load torch

    buffer = io.BytesIO()
    torch.save({
        "format": BUNDLE_FORMAT, "models": model_file.models,
        "records": model_file.records,
        "classes": model_file.classes, "dims": model_file.dims, "train": model_file.train,
        "features": str(model_file.features), "store_config": json.dumps(model_file.store_config),
    }, buffer)
    atomic_write_bytes(run / BUNDLE, buffer.getvalue())
    return run / BUNDLE


def _rebuild(run: Path) -> str:
    """The fix for a damaged model.pt: resume the run, which writes it anew."""
    return repair_hint(run, f"`afgen train FEATURES {run} --resume` to rebuild it")


def load_bundle(path: Path) -> dict:
    """RUN/model.pt as torch.load gives it (weights_only); a missing, damaged or outdated one is
    a RunError naming it and the fix."""
    run = path.parent
    if not path.is_file():
        raise RunError("no model.pt: not a finished run (train it with `afgen train`, or finish an interrupted "
                       "one with `--resume`)", run)
    import torch

    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad zip/pickle
        raise damaged(path, exc, _rebuild(run)) from None
    if not isinstance(bundle, dict) or bundle.get("format") not in READABLE_BUNDLE_FORMATS:
        raise RunError("this run was trained by an older afgen (model.pt format 1) or is not a model bundle; "
                       "retrain it with `afgen train`", path)
    return bundle


def read_model_file(path: Path) -> ModelFile:
    """RUN/model.pt (format 2 or 3) read into a ModelFile; a missing or damaged one is a RunError."""
    bundle = load_bundle(path)
    try:
        return ModelFile(models=dict(bundle["models"]), records=dict(bundle.get("records") or {}),
                         classes=list(bundle["classes"]), dims=dict(bundle["dims"]), train=dict(bundle["train"]),
                         features=Path(bundle["features"]), store_config=json.loads(bundle["store_config"]),
                         format=int(bundle["format"]), tokens=list(bundle.get("tokens", ())),
                         frame_models=list(bundle.get("frame_models", ())))
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged(path, exc, _rebuild(path.parent)) from None


__all__ = ["BUNDLE", "BUNDLE_FORMAT", "READABLE_BUNDLE_FORMATS", "ModelFile", "load_bundle", "read_model_file",
           "write_model_file"]
