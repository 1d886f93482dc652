"""What made a store or a run: package versions and the git commit (no heavy imports, so that
reading a run does not load the extraction stack)."""

from __future__ import annotations

import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

#: Packages whose versions every store and run records.
RECORDED = ("afgen", "torch", "torchvision", "av", "opencv-contrib-python-headless", "numpy", "librosa", "lightning",
            "onnx", "onnxruntime", "openvino")


def installed_version(name: str) -> str | None:
    """The installed version of package `name`, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str]:
    """Python's version and the installed version of each RECORDED package (absent ones left out)."""
    out = {"python": platform.python_version()}
    return out | {name: v for name in RECORDED if (v := installed_version(name)) is not None}


def git_commit() -> str | None:
    """The commit afgen runs from when it is a git checkout, else None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_description() -> str:
    """The CPU model and the flags that decide the fastest runtime (bf16, AVX-512, AVX2): what
    per-machine measurements (runtimes, producer costs) are keyed by."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = sorted(set(re.findall(r"\b(amx_bf16|avx512_bf16|avx512f|avx2)\b", text)))
    model = re.search(r"model name\s*:\s*(.+)", text)
    return f"{model.group(1).strip() if model else 'unknown CPU'}; flags: {', '.join(flags) or 'none of avx2/avx512/amx'}"
