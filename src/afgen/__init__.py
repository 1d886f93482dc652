"""afgen: audio feature generation for video action recognition with missing audio.

Reproduces Lee, Lin, Hsu & Hsu, "Audio Feature Generation for Missing Modality Problem in
Video Action Recognition" (ICASSP 2019). See README.md for the pipeline and the API.

The pipeline's entry points are importable from here (loaded on first use, so `import afgen`
stays light): discover, extract, train, evaluate, predict, predict_many; for reading
features in your own code, FeatureStore, FeatureDataset and pad_collate; and for a method of
your own, Stage, Method, register_stage, register_method and register_model (the whole API:
afgen.learning.method_api).
"""

import importlib
import os

# Idle OpenMP threads sleep instead of spinning: torch's pool otherwise keeps a core busy
# between batches, and decoding, flow and small training steps in the same process slow down
# several-fold on a 2-core machine. Set here, so the Python API gets it as the CLI does; it
# takes effect when afgen is imported before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from afgen.errors import AfgenError, DatasetError, StoreError, VideoError  # noqa: E402

__version__ = "0.1.0"

#: name -> module of the public API, imported on first use.
_LAZY = {
    "discover": "afgen.extraction.dataset",
    "extract": "afgen.extraction.extract",
    "train": "afgen.learning.train",
    "evaluate": "afgen.learning.evaluate",
    "predict": "afgen.learning.predict",
    "predict_many": "afgen.learning.predict_batch",
    "FeatureStore": "afgen.contracts.store",
    "FeatureDataset": "afgen.learning.feature_dataset",
    "pad_collate": "afgen.learning.feature_dataset",
    # A method of your own (docs/methods.md): stages, rows and model classes, registered.
    "Stage": "afgen.learning.method_api",
    "Method": "afgen.learning.method_api",
    "register_stage": "afgen.learning.method_api",
    "register_method": "afgen.learning.method_api",
    "register_model": "afgen.learning.method_api",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'afgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API, lazy attributes included (tab completion and help(afgen) see them)."""
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["AfgenError", "DatasetError", "StoreError", "VideoError", "__version__", *_LAZY]
