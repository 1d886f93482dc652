"""The registry of stages (what `afgen train` fits), methods (the rows `afgen evaluate` scores)
and model classes (what model.pt can rebuild), filled from afgen's built-in rows, from your
own code (`register_stage`, `register_method`, `register_model`) and from installed packages
(the `afgen.methods` entry-point group). train.py, run_loader.py and evaluate.py only read it.

See docs/methods.md for how to write a method; learning/method_api.py is its public face.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from afgen.contracts import evalfolder
from afgen.errors import AfgenError
from afgen.learning.fills import Fill

log = logging.getLogger(__name__)

#: The entry-point group an installed package declares its methods in (pyproject.toml:
#: [project.entry-points."afgen.methods"] name = "package.module" or "package.module:register").
ENTRY_POINT_GROUP = "afgen.methods"
BUILT_IN = "built-in"
#: Where registrations come from when neither afgen nor a plugin is loading: the user's code.
YOUR_CODE = "your code (register_*)"
#: The built-in rows, imported on first use of the registry (each registers what it defines).
BUILTIN_MODULES = ("afgen.learning.rows.builtin", "afgen.learning.rows.transformer_fusion",
                   "afgen.learning.rows.actionmae")
#: The column every row is also compared with: the best of the visual-reference rows at each
#: rate (the results.json key, owned by the eval folder contract).
BEST_VISUAL = evalfolder.BEST_VISUAL


@dataclass(frozen=True)
class Stage:
    """A model `afgen train` fits, in RUN/<name>/.

    train            `train(ctx) -> Trained`: builds the model from the store's dimensions and
                     fits it (usually `ctx.fit(module)`, afgen's shared Lightning fit); `ctx`
                     (stage_context.StageContext) gives the data, the settings and the outputs of
                     the stages in `needs`
    needs            stages that must be trained first (a generator whose audio it trains on, a
                     teacher, a model it starts from)
    per_frame_audio  it reads the store's per-frame audio (audio_frames): skipped, with every
                     stage and row that needs it, for a store without it
    """

    name: str
    description: str
    train: Callable[[Any], Any]  # (stage_context.StageContext) -> stage_context.Trained
    needs: tuple[str, ...] = ()
    per_frame_audio: bool = False
    source: str = BUILT_IN


@dataclass(frozen=True)
class Method:
    """One row of the evaluation table: the stage whose model scores it and how a test clip's
    missing audio is handled (a fills.Fill).

    paper             the paper's method: every row is compared with it, paired (one row)
    baseline          every row is compared with it at every rate, paired
    visual_reference  a plain visual-only row: "best visual-only" is the best of these at each rate
    competes          may be named the best method (False for the upper bound, which sees audio
                      that is missing)
    """

    key: str
    label: str
    model: str
    fill: Fill
    paper: bool = False
    baseline: bool = False
    visual_reference: bool = False
    competes: bool = True
    source: str = BUILT_IN

    @property
    def needs(self) -> tuple[str, ...]:
        """The stages this row is scored with: its model and its fill's generator."""
        return tuple(dict.fromkeys(n for n in (self.model, self.fill.generator) if n))


@dataclass
class Registry:
    stages: dict[str, Stage] = field(default_factory=dict)
    methods: dict[str, Method] = field(default_factory=dict)
    models: dict[str, type] = field(default_factory=dict)
    #: Plugins that failed to load: entry-point name -> the one line that says why.
    broken: dict[str, str] = field(default_factory=dict)

    def paper(self) -> Method:
        """The paper's method (the row every other is compared with)."""
        for method in self.methods.values():
            if method.paper:
                return method
        raise AfgenError("no method is marked as the paper's (Method(paper=True))")

    def order(self, names: Iterable[str]) -> list[Stage]:
        """These stages and everything they need, dependencies first (else registration order)."""
        done: dict[str, Stage] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done:
                return
            if name in path:
                raise AfgenError(f"stages need each other in a circle: {' -> '.join(path + (name,))}")
            if name not in self.stages:
                who = f"stage {path[-1]!r} ({self.stages[path[-1]].source})" if path else "this run"
                raise AfgenError(f"{who} needs the stage {name!r}, which nothing registers; "
                                 f"registered: {', '.join(self.stages)}")
            for need in self.stages[name].needs:
                visit(need, path + (name,))
            done[name] = self.stages[name]

        wanted = set(names)
        for name in [n for n in self.stages if n in wanted] + sorted(wanted - set(self.stages)):
            visit(name, ())
        return list(done.values())

    def stages_for(self, methods: Iterable[str] | None) -> list[Stage]:
        """The stages to train for these rows (None: every registered stage), in order."""
        if methods is None:
            return self.order(self.stages)
        unknown = [m for m in methods if m not in self.methods]
        if unknown:
            raise AfgenError(f"no such method: {', '.join(unknown)}; `afgen methods` lists them "
                             f"({', '.join(self.methods)})")
        return self.order(n for m in methods for n in self.methods[m].needs)

    def reads_frames(self, method: Method) -> bool:
        return self.stages[method.model].per_frame_audio if method.model in self.stages else False


_REGISTRY = Registry()
_state = {"loaded": False, "source": YOUR_CODE}


@contextlib.contextmanager
def _source(source: str) -> Iterator[None]:
    before = _state["source"]
    _state["source"] = source
    try:
        yield
    finally:
        _state["source"] = before


def registry() -> Registry:
    """The registry, with the built-in rows and every installed plugin loaded (once)."""
    if not _state["loaded"]:
        _state["loaded"] = True
        with _source(BUILT_IN):
            for module in BUILTIN_MODULES:
                importlib.import_module(module)
        load_plugins()
    return _REGISTRY


def load_plugins() -> None:
    """Import every package in the `afgen.methods` entry-point group. A broken one is one
    warning line naming it (and what it registered is taken back), never an error for all."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"{ep.dist.name if ep.dist else ep.value} (plugin {ep.name!r})"
        snapshot = (dict(_REGISTRY.stages), dict(_REGISTRY.methods), dict(_REGISTRY.models))
        try:
            with _source(source):
                loaded = ep.load()
                if callable(loaded) and not isinstance(loaded, type):
                    loaded()  # "package.module:register"
        except Exception as exc:  # noqa: BLE001 - any failure of someone else's code is theirs, not ours
            _REGISTRY.stages, _REGISTRY.methods, _REGISTRY.models = (dict(d) for d in snapshot)
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            line = (f"the afgen.methods plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                    f"{type(exc).__name__}{': ' + detail if detail else ''}")
            _REGISTRY.broken[ep.name] = line
            log.warning(line)


def _add(table: dict, key: str, item: Any, what: str, replace: bool) -> None:
    if key in table and not replace:
        raise AfgenError(f"a {what} named {key!r} is already registered (by {getattr(table[key], 'source', '?')}); "
                         "choose another name, or pass replace=True to replace it")
    table[key] = item


def register_stage(stage: Stage, replace: bool = False) -> Stage:
    """Add a stage (what `afgen train` fits). Its source is where the call comes from."""
    if not _state["loaded"]:
        registry()  # the built-in rows first, so that yours come after them in the table
    from dataclasses import replace as with_field

    stage = with_field(stage, source=_state["source"], needs=tuple(stage.needs))
    _add(_REGISTRY.stages, stage.name, stage, "stage", replace)
    return stage


def register_method(method: Method, replace: bool = False) -> Method:
    """Add a row to the evaluation table (scored with the model of the stage `method.model`)."""
    if not _state["loaded"]:
        registry()
    from dataclasses import replace as with_field

    method = with_field(method, source=_state["source"])
    _add(_REGISTRY.methods, method.key, method, "method", replace)
    return method


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: model.pt records `name` and the constructor's arguments of every
    instance, so `load_run` rebuilds it without guessing. Arguments must be plain values
    (numbers, strings, booleans, None, lists/dicts of them)."""
    def decorate(cls: type) -> type:
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self, *args, **kwargs) -> None:
            init(self, *args, **kwargs)
            if type(self) is cls:  # the most derived registered class records itself
                bound = signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop(next(iter(signature.parameters)))
                object.__setattr__(self, "afgen_record", {"model": name, "args": arguments})

        cls.__init__ = __init__
        same = _REGISTRY.models.get(name)  # the same class again (a module reloaded) replaces itself
        _add(_REGISTRY.models, name, cls, "model class",
             replace=same is not None and (same.__module__, same.__qualname__) == (cls.__module__, cls.__qualname__))
        return cls

    return decorate


def rebuild(record: dict) -> Any:
    """A model from its model.pt record ({"model": name, "args": {...}})."""
    registry()
    cls = _REGISTRY.models.get(record.get("model"))
    if cls is None:
        raise AfgenError(f"this run holds a model of class {record.get('model')!r}, which nothing registers: "
                         "install the package that provides it (or register it in your code) to load the run")
    return cls(**record["args"])
