"""Extraction engines: how clips are scheduled (never what a clip produces, nor the store).

The table is `config.ENGINES` (name -> the engine's module, imported when used);
`interface.engine(name)` looks one up. Every engine module has the same two functions
(interface.py: what they are given and return):

- `plan(request: Request) -> Plan`: before the backbone is built (extract only): the device,
  runtime and precision its backbone runs, and anything it starts early (the local engine's
  producer processes);
- `run(todo: list[Clip], job: Job) -> Iterator[Event]`: one event per clip, in any order:
  ("done", clip_id, ClipFeatures) or ("failed", clip_id, meta, error).

extract.py writes the events to the store, predict scores them; both through driver.py's loop.
local: producer processes on this machine. ray_data: Ray Data across a cluster.
This module stays torch-free: the producer processes import it.
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
