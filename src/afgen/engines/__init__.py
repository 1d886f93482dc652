"""Extraction engines: how clips are scheduled (never what a clip produces, nor the store).

Each engine's `run(todo, settings, cfg, ...)` yields one event per clip, in any order:
("done", clip_id, ClipFeatures) or ("failed", clip_id, meta, error). extract.py writes them.
local: producer processes on this machine. ray_data: Ray Data across a cluster.
"""

from __future__ import annotations

from typing import Any

#: ("done", clip_id, ClipFeatures) or ("failed", clip_id, meta, error)
Event = tuple[Any, ...]

ENGINES = ("local", "ray")
