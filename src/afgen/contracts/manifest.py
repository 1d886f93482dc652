"""An append-only JSON-lines log of per-clip outcomes; the last line for a clip wins.

Appends are flushed and fsynced line by line, so a killed run loses at most the line being
written, and a torn or garbage line is ignored on reading (with a warning; `afgen verify`
lists such lines and `--repair` removes them).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from afgen.errors import write_failed

log = logging.getLogger(__name__)


class Manifest:
    """Per-clip records keyed by `id`, stored in a .jsonl file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def lines(self) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
        """(line number, text, record or None when the line is not a clip record)."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    rec = None
                if not (isinstance(rec, dict) and isinstance(rec.get("id"), str)):
                    rec = None
                yield n, line, rec

    def records(self) -> dict[str, dict[str, Any]]:
        """The latest record of every clip, in first-seen order."""
        return self.latest(self.lines())

    def latest(self, lines: Iterable[tuple[int, str, dict[str, Any] | None]]) -> dict[str, dict[str, Any]]:
        """The latest record of every clip among `lines` (as lines() gives them, e.g. read once
        and kept), in first-seen order; a line that is not a record is skipped with a warning."""
        out: dict[str, dict[str, Any]] = {}
        for n, _, rec in lines:
            if rec is None:
                log.warning("%s: line %d is not a clip record (torn by a killed run?); ignoring it",
                            self.path, n)
                continue
            out[rec["id"]] = rec
        return out

    def ids_with_status(self, status: str) -> set[str]:
        return {cid for cid, rec in self.records().items() if rec.get("status") == status}

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably (a failed write is a WriteError; a torn line is ignored later)."""
        line = json.dumps(record, sort_keys=True, default=str)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+", encoding="utf-8") as fh:
                # Shards of one store append to this file from several processes: one at a time.
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:
                    fh.seek(fh.tell() - 1)
                    if fh.read(1) != "\n":  # a torn line from a killed run: start a fresh one
                        fh.write("\n")
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise write_failed(self.path, exc) from exc
