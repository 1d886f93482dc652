"""The one error type afgen raises for bad input, with the file and the fix in its message."""

from __future__ import annotations

import errno
from pathlib import Path


class AfgenError(Exception):
    """Bad input or settings: the message names the file (if any), the cause and the fix."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class VideoError(AfgenError):
    """A clip that cannot be decoded into at least two frames."""


class DatasetError(AfgenError):
    """A dataset layout or list that cannot be read."""


class StoreError(AfgenError):
    """A feature store that does not match the requested settings or is damaged."""


class WriteError(AfgenError):
    """A write that failed (disk full, I/O error, permission): nothing partial was kept."""


class RunError(AfgenError):
    """A run folder (model.pt, checkpoints, provenance) that is missing or damaged."""


def write_failed(path: Path, exc: OSError) -> WriteError:
    """The one message for a write that failed: what happened and how to go on."""
    why = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        fix = "free disk space, then rerun the same command"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable (or choose another), then rerun the same command"
    else:
        fix = "check the disk, then rerun the same command"
    return WriteError(f"could not write ({why}); nothing partial was kept: {fix} (finished work is kept)", path)


def repair_hint(path: str | Path, then: str) -> str:
    """The one wording of "repair it, then rerun": `afgen verify PATH --repair`, then `then`."""
    return f"run `afgen verify {path} --repair`, then {then}"
