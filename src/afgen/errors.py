"""The one error type afgen raises for bad input, with the file and the fix in its message."""

from __future__ import annotations

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
