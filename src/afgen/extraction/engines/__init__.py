"""Extraction engines: how clips are scheduled (never what a clip produces, nor the store).

Each engine's `run(todo, settings, cfg, ...)` yields one event per clip, in any order:
("done", clip_id, ClipFeatures) or ("failed", clip_id, meta, error). extract.py writes them.
local: producer processes on this machine. ray_data: Ray Data across a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from afgen.config import ENGINES

__all__ = ["ENGINES", "Event", "Stats"]

#: ("done", clip_id, ClipFeatures) or ("failed", clip_id, meta, error)
Event = tuple[Any, ...]



@dataclass
class Stats:
    """Where the extracting process's time went (the local engine fills it in)."""

    #: Seconds the backbone's process sat waiting for producer messages (decode, flow, audio),
    #: after the first message; before it, the producers were starting (startup_wait_seconds).
    wait_seconds: float = 0.0
    startup_wait_seconds: float = 0.0
    #: Seconds in backbone (and learned-flow) calls.
    backbone_seconds: float = 0.0
    producers_started: bool = False
    #: The local engine's split of the cores and why (engines/balance.py), as it ended.
    split: str | None = None

    def waited(self, seconds: float) -> None:
        if self.producers_started:
            self.wait_seconds += seconds
        else:
            self.startup_wait_seconds += seconds
