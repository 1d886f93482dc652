"""One writer per store or output file (or per shard of it): a lock file that names its holder.

FEATURES/.locks/<scope>.lock (StoreLock) or .FILE.locks/<scope>.lock beside an output file
(FileLock: `afgen predict --out FILE`) holds {pid, host, started, command}. It is created with
a hard link from a temporary file (atomic, also on NFS), removed when the run ends, and taken
over when its holder is a process on this host that no longer runs. A plain run's scope is
"all"; `--shard I/N` runs lock "shard-I-of-N", so shards of one partition write side by side
while anything that overlaps them (a plain run, another partition, the same shard) is refused.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afgen.errors import StoreError

log = logging.getLogger(__name__)

LOCKS = ".locks"
ALL = "all"


def shard_scope(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}"


def overlaps(a: str, b: str) -> bool:
    """Whether two scopes may write the same clip: "all" overlaps everything; shards of one
    partition (same N) overlap only themselves."""
    if ALL in (a, b):
        return True
    _, i, _, n = a.split("-")
    _, j, _, m = b.split("-")
    return n != m or i == j


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(info: dict[str, Any]) -> bool | None:
    """True/False for a holder on this host; None when it runs elsewhere (cannot be checked)."""
    if info.get("host") != socket.gethostname():
        return None
    pid = int(info.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    ticks = info.get("start_ticks")
    return ticks is None or ticks == _start_ticks(pid)


@dataclass
class StoreLock:
    """Context manager: hold the lock of `scope` on the store at `root` for the run's duration."""

    root: Path
    scope: str = ALL
    command: str = ""
    #: what the lock guards, in its messages
    noun = "store"

    @property
    def folder(self) -> Path:
        return Path(self.root) / LOCKS

    @property
    def path(self) -> Path:
        return self.folder / f"{self.scope}.lock"

    def __enter__(self) -> StoreLock:
        folder = self.folder
        info = {"pid": os.getpid(), "host": socket.gethostname(), "scope": self.scope,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "start_ticks": _start_ticks(os.getpid()),
                "command": self.command}
        tmp = folder / f".{self.scope}.{os.getpid()}.tmp"
        for attempt in range(3):  # a FileLock's folder goes when its last holder leaves, maybe meanwhile
            folder.mkdir(parents=True, exist_ok=True)
            try:
                tmp.write_text(json.dumps(info))
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    break
                except FileExistsError:
                    self._refuse_or_clear(self.path)
            else:
                raise StoreError(f"could not take the {self.noun}'s lock (another run keeps taking it); "
                                 "rerun in a moment", self.path)
        finally:
            tmp.unlink(missing_ok=True)
        for other in sorted(folder.glob("*.lock")):
            if other != self.path and overlaps(self.scope, other.stem):
                try:
                    self._refuse_or_clear(other)
                except StoreError:
                    self.path.unlink(missing_ok=True)
                    raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)

    def _refuse_or_clear(self, path: Path) -> None:
        """Raise naming the holder of `path`, or remove it when its holder is gone."""
        try:
            info = json.loads(path.read_text())
        except FileNotFoundError:
            return  # released meanwhile
        except (OSError, json.JSONDecodeError):
            info = {}
        alive = _alive(info) if info else False
        if alive is False:
            log.warning("%s: taking over a stale lock (pid %s on %s is gone)", path, info.get("pid"), info.get("host"))
            path.unlink(missing_ok=True)
            return
        holder = f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
        if info.get("command"):
            holder += f" ({info['command']})"
        hint = (f" Shards of one {self.noun} must share N and differ in I." if self.scope != ALL or path.stem != ALL
                else "")
        raise StoreError(
            f"another afgen run is writing this {self.noun}: {holder}. Wait for it to finish, or, if that process "
            f"is gone, delete {path}.{hint}", Path(self.root))


class FileLock(StoreLock):
    """The same lock on one output file (`root` is the file): its lock files live in
    .NAME.locks/ beside it, and that folder goes when its last holder leaves."""

    noun = "file"

    @property
    def folder(self) -> Path:
        return Path(self.root).parent / f".{Path(self.root).name}.locks"

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        try:
            self.folder.rmdir()
        except OSError:
            pass  # another shard still holds its lock here
