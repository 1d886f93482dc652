"""An exported model folder: the contract between `afgen export-model` (export/model.py, which
writes it) and its readers (`afgen predict --onnx`). The file that describes the export, and an
ONNX Runtime session for one of its graphs. Imports neither torch nor onnxruntime until asked.
"""

from __future__ import annotations

from pathlib import Path

from afgen.errors import AfgenError

#: What the export holds: format, file names, classes, dimensions, the store's config.
META = "export.json"
#: How to install what exporting and running an export need.
INSTALL = 'pip install "afgen[export]"'


def onnx_session(path: Path):
    """An onnxruntime CPU session for an exported file; a clear error without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise AfgenError(f"running an exported model needs onnxruntime: {INSTALL}") from None
    if not path.is_file():
        raise AfgenError("no exported model here; run `afgen export-model RUN OUT` first", path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
