"""The one engine interface: what an engine's `plan` and `run` are given and return, and the
lookup of an engine in the table (config.ENGINES: name -> module). A new engine is a module
with `plan(request) -> Plan` and `run(todo, job) -> Iterator[Event]`, and its line in the table.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from afgen.config import ENGINES, AudioFeatureConfig, ExtractConfig, FlowConfig, VideoConfig
from afgen.errors import AfgenError
from afgen.extraction.engines import Event, Stats

if TYPE_CHECKING:
    from afgen.encoders.backbones import Backbone
    from afgen.encoders.raft import RaftFlow
    from afgen.encoders.runtime_choice import Choice
    from afgen.extraction.dataset import Clip
    from afgen.extraction.engines.balance import Balancer
    from afgen.extraction.engines.pool import ProducerPool
    from afgen.extraction.producer import Settings


@dataclass
class Request:
    """What an engine plans an extraction from: the settings asked for, how many clips, the
    settings of a store being resumed (None: a new store), whether the caller gave its own
    backbone, and producer processes the CLI started early (`pools`: the engine may close them,
    or add the ones it starts, which extract closes when it ends); `clips`: those the run does
    if the store is new (after --limit and --shard), for an engine to start on early."""

    cfg: ExtractConfig
    video: VideoConfig
    flow: FlowConfig
    audio: AudioFeatureConfig
    n_clips: int
    stored: dict | None = None
    backbone_given: bool = False
    pools: list[ProducerPool] = field(default_factory=list)
    clips: list[Clip] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """How the backbone runs: `cfg` with the runtime, precision and batch to build it with, the
    producers' `settings`, how `auto` chose (`choice`, or a `notice`), a resumed store's own pair
    when this device runs it otherwise (`stored_as`: the store's settings keep it), and what the
    engine prepared for its run (the local engine's `pool` and `balancer`, Ray's `placement`)."""

    cfg: ExtractConfig
    settings: Settings
    choice: Choice | None = None
    notice: str | None = None
    stored_as: dict | None = None
    #: Where the backbone runs when not in this process (Ray's actors: "cuda" or "cpu"); the
    #: backbone built here then only gives the store its identity, built on the CPU with torch.
    remote_device: str | None = None
    pool: ProducerPool | None = None
    balancer: Balancer | None = None
    placement: Any = None

    def reason(self) -> str | None:
        """The line the CLI prints about the runtime (None: given, or kept from the store unchanged)."""
        return self.choice.reason() if self.choice else self.notice


@dataclass
class Job:
    """What an engine's `run` is given: the producers' settings, the extraction settings, the
    backbone built here (with RAFT for a learned flow), the engine's plan (None: it plans what it
    needs itself, as prediction does) and where the time went (`stats`)."""

    settings: Settings
    cfg: ExtractConfig
    backbone: Backbone
    raft: RaftFlow | None = None
    plan: Plan | None = None
    stats: Stats = field(default_factory=Stats)


class Engine(Protocol):
    """An engine: a module with these two functions (see the module's docstring)."""

    def plan(self, request: Request) -> Plan: ...

    def run(self, todo: list[Clip], job: Job) -> Iterator[Event]: ...


def engine(name: str) -> Engine:
    """The engine called `name` in config.ENGINES (its module, imported now)."""
    if name not in ENGINES:
        raise AfgenError(f"engine (--engine) must be one of {', '.join(ENGINES)}; got {name!r}")
    return importlib.import_module(ENGINES[name])


def run_with(todo: list[Clip], cfg: ExtractConfig, built: ExtractConfig, backbone: Backbone, settings: Settings,
             raft: RaftFlow | None = None) -> Iterator[Event]:
    """`todo` extracted with a backbone built beforehand (`built`: its settings; with the producers'
    `settings` and RAFT: a store's, as prediction rebuilds them), scheduled by the engine `cfg.engine`
    with cfg's workers and Ray settings; the engine plans nothing more (Ray places its actors)."""
    engine_cfg = replace(cfg, backbone=built.backbone, weights=built.weights, precision=built.precision,
                         runtime=built.runtime, batch_size=backbone.batch_size, flow_weights=built.flow_weights)
    return engine(engine_cfg.engine).run(todo, Job(settings, engine_cfg, backbone, raft))


def requested_runtime(cfg: ExtractConfig, stored: dict | None) -> tuple[str, str, bool]:
    """The runtime and precision asked for, and whether they are a resumed store's own: `auto`
    keeps the store's runtime (torch where it names none), and its precision when that is auto too."""
    if stored is None or cfg.runtime != "auto":
        return cfg.runtime, cfg.precision, False
    precision = stored.get("precision", "auto") if cfg.precision == "auto" else cfg.precision
    return stored.get("runtime", "torch"), precision, True
