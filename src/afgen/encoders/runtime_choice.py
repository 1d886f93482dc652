"""`--runtime auto` on a CPU: the fastest backbone runtime on this machine, by measurement.

The best runtime differs between CPUs (OpenVINO bf16 on AMX, ONNX Runtime or OpenVINO fp32 on
AVX2), so every available (runtime, precision) pair is timed on a few batches at the run's
backbone, image size and batch, once per machine. The result is cached in the user's
cache folder, keyed by the CPU model and flags, the runtimes' versions, the backbone, size and
batch (not the thread count: runs with more or fewer producers on one machine choose alike, so
their features are alike too). A pair whose features fall below cosine RUNTIME_MIN_COSINE of fp32 eager
torch on the same images is never chosen. Random weights: the weights change neither the speed
nor how closely a runtime follows eager torch. The likely fastest are timed first and a
candidate already much slower on a probe of a few images is timed no further, so a machine's first
measurement costs seconds, not the slow runtimes' batches (the dead start of issue 29).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from afgen.config import (
    MEASURE_RUNTIMES_ENV,
    RUNTIME_DROP_SLOWER,
    RUNTIME_MIN_COSINE,
    RUNTIME_TRIAL_BATCHES,
    cache_dir,
)
from afgen.contracts.store import atomic_write_json
from afgen.encoders.backbones import bf16_supported, build_backbone, resolve_precision
from afgen.encoders.runtimes.onnx import ONNXRUNTIME
from afgen.encoders.runtimes.onnx import available as ort_available
from afgen.encoders.runtimes.openvino import OPENVINO, supports_bf16
from afgen.encoders.runtimes.openvino import available as ov_available
from afgen.encoders.runtimes.resolve import resolve_runtime
from afgen.errors import WriteError
from afgen.provenance import cpu_description, installed_version  # noqa: F401 - cpu_description re-exported

log = logging.getLogger(__name__)

CACHE_FILE = "runtimes.json"
CPU = torch.device("cpu")
#: Images eager fp32 computes as the reference the candidates' features are compared with.
REFERENCE_IMAGES = 4  # also each candidate's probe
#: The order candidates are timed in: those fastest on the CPUs measured first, so the slow
#: ones are dropped after one batch (the choice itself is by measurement, whatever the order).
_LIKELY_ORDER = [(OPENVINO, "bf16"), ("torch", "bf16"), (OPENVINO, "fp32"), (ONNXRUNTIME, "fp32"), ("torch", "fp32")]


@dataclass(frozen=True)
class Trial:
    """One runtime's measurement: images/s (fastest batch) and its lowest feature cosine to fp32
    eager torch; `error` when it could not be built or run."""

    runtime: str
    precision: str
    images_per_s: float = 0.0
    min_cosine: float = 0.0
    error: str | None = None
    #: The backbone's threads it was timed on (0: not recorded, a measurement from before it was).
    threads: int = 0
    #: Timed on its probe only (REFERENCE_IMAGES images): already RUNTIME_DROP_SLOWER x slower than the fastest.
    dropped: bool = False

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"

    @property
    def eligible(self) -> bool:
        return self.error is None and self.min_cosine >= RUNTIME_MIN_COSINE


@dataclass(frozen=True)
class Choice:
    """What `auto` runs the backbone with, and the trials it was chosen from."""

    runtime: str
    precision: str
    trials: tuple[Trial, ...] = ()
    cached: bool = False
    #: Why: measured, cached, the fixed rule (measuring switched off), or not a CPU.
    how: str = "measured"
    #: The runtime the choice was limited to (`--runtime NAME --precision auto`), or auto.
    among: str = "auto"

    def reason(self) -> str:
        """One line: the choice, its speed against the others, and where it came from."""
        best = next((t for t in self.trials if (t.runtime, t.precision) == (self.runtime, self.precision)), None)
        if best is None:
            return f"{self.runtime} {self.precision} ({self.how})"
        others = ", ".join(f"{t.label} {t.images_per_s:.1f}{' (probed only)' if t.dropped else ''}"
                           if t.error is None and t.eligible
                           else f"{t.label} {'failed' if t.error else f'refused: cosine {t.min_cosine:.5f}'}"
                           for t in self.trials if t is not best and self.among in ("auto", t.runtime))
        source = "cached measurement" if self.cached else "measured now"
        fastest = "fastest" if self.among == "auto" else f"the fastest precision of --runtime {self.among}"
        return (f"{self.runtime} {self.precision}: {fastest} at {best.images_per_s:.1f} img/s"
                f"{f' (against {others})' if others else ''}; {source}")


def candidates(precision: str) -> list[tuple[str, str]]:
    """The (runtime, precision) pairs this machine can run for the requested precision
    (auto: fp32 everywhere, bf16 too where the CPU has it natively)."""
    pairs = []
    if precision in ("fp32", "auto"):
        pairs.append(("torch", "fp32"))
        pairs += [(ONNXRUNTIME, "fp32")] if ort_available() else []
        pairs += [(OPENVINO, "fp32")] if ov_available() else []
    if precision == "bf16" or (precision == "auto" and bf16_supported(CPU)):
        pairs.append(("torch", "bf16"))
    if precision in ("bf16", "auto") and ov_available() and supports_bf16():
        pairs.append((OPENVINO, "bf16"))
    return pairs


def cache_key(backbone: str, size: tuple[int, int], batch: int, precision: str) -> str:
    """What decides the measurement: this CPU, the runtimes' versions, the backbone's shape of work."""
    return json.dumps({"cpu": cpu_description(), "backbone": backbone,
                       "size": list(size), "batch": batch, "precision": precision,
                       "versions": {p: installed_version(p) for p in ("torch", "onnxruntime", "openvino")}}, sort_keys=True)


def measure(backbone: str, size: tuple[int, int], batch: int, precision: str,
            trials: int = RUNTIME_TRIAL_BATCHES, weights: str = "none",
            hush: Callable[[], AbstractContextManager] = nullcontext) -> tuple[Trial, ...]:
    """Time every candidate on the same random images at torch's current threads and compare
    its features with fp32 eager torch's. Each is first probed on REFERENCE_IMAGES images (the
    cosine check, and eager fp32's run is the reference itself), timed on a second call; the likely fastest go first,
    and one whose probe is already RUNTIME_DROP_SLOWER x slower than the fastest so far is timed
    no further (it cannot win): on a bf16 CPU that skips the full batches of eager torch, the
    slowest. The others get a warm-up batch and the fastest of `trials` batches. `weights`: the
    run's, so the graph exported here is the one it runs (the cache's), not built twice. `hush`:
    a block that pauses other work on this machine (the run's producers, which work through the
    builds and exports) while a candidate is timed."""
    images = np.random.default_rng(0).integers(0, 255, (batch, *size, 3), dtype=np.uint8)
    threads = torch.get_num_threads()
    few = min(batch, REFERENCE_IMAGES)
    out: dict[tuple[str, str], Trial] = {}
    eager = build_backbone(backbone, weights, "cpu", "fp32", few, runtime="torch")
    reference = eager(images[:few])
    with hush():
        probes = {("torch", "fp32"): _probe(eager, images[:few])}
    best = 0.0  # the fastest candidate's img/s so far
    order = sorted(candidates(precision), key=lambda c: _LIKELY_ORDER.index(c) if c in _LIKELY_ORDER else 0)
    for runtime, prec in order:
        try:
            if (runtime, prec) == ("torch", "fp32"):
                model, feats = eager, reference
            else:
                model = build_backbone(backbone, weights, "cpu", prec, few, runtime=runtime)
                feats = model(images[:few])  # compared below; also the first call's one-off costs
                with hush():
                    probes[runtime, prec] = _probe(model, images[:few])
            rate = probes[runtime, prec]
            dropped = rate * RUNTIME_DROP_SLOWER < best
            if not dropped:  # its speed is the run's batch's, not the probe's (a few images can run faster)
                model.batch_size = batch
                with hush():
                    model(images)  # warm-up at the run's batch
                    rate = 0.0
                    for _ in range(trials):
                        start = time.perf_counter()
                        model(images)
                        rate = max(rate, batch / (time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001 - a runtime that fails here is simply not chosen
            out[runtime, prec] = Trial(runtime, prec, error=f"{type(exc).__name__}: {exc}"[:200], threads=threads)
            continue
        cos = np.sum(feats * reference, 1) / np.maximum(
            np.linalg.norm(feats, axis=1) * np.linalg.norm(reference, axis=1), 1e-12)
        trial = Trial(runtime, prec, rate, float(cos.min()), threads=threads, dropped=dropped)
        out[runtime, prec] = trial
        if trial.eligible:
            best = max(best, rate)
    return tuple(out[c] for c in candidates(precision))  # the candidates' own order, for the tables


def _probe(model, images: np.ndarray) -> float:
    """Img/s of one call on a few images, after the first (which pays one-off set-up costs)."""
    start = time.perf_counter()
    model(images)
    return len(images) / (time.perf_counter() - start)


def measured_speed(backbone: str, size: tuple[int, int], batch: int, runtime: str,
                   precision: str) -> Trial | None:
    """The cached measurement of `runtime` `precision` for this backbone, size and batch on this
    machine (from any earlier `auto` run), or None: how the engine knows a given runtime's speed."""
    cache = _read_cache(cache_dir() / CACHE_FILE)
    for asked in dict.fromkeys((precision, "auto")):
        entry = cache.get(cache_key(backbone, size, batch, asked))
        try:
            trials = [Trial(**t) for t in entry["trials"]] if entry else []
        except (TypeError, KeyError):
            continue
        for t in trials:
            if (t.runtime, t.precision) == (runtime, precision) and t.error is None:
                return t
    return None


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("ignoring an unreadable runtime cache %s (it will be measured and rewritten)", path)
        return {}


def _write_cache(path: Path, data: dict) -> None:
    try:
        atomic_write_json(path, data)
    except WriteError as exc:  # a read-only home must not stop an extraction
        log.warning("cannot cache the runtime measurement (%s); it will be measured again next time", exc)


def _measures(device: torch.device, runtime: str) -> bool:
    """Whether `auto` is measured at all here: a CPU, measuring not switched off, more than one
    precision to choose between (ONNX Runtime runs fp32 only)."""
    return runtime != ONNXRUNTIME and device.type == "cpu" and os.environ.get(MEASURE_RUNTIMES_ENV, "1") != "0"


def _cached_trials(cache: dict, key: str) -> tuple[Trial, ...] | None:
    """The trials cached under `key`, or None (not there, or an entry that does not read)."""
    entry = cache.get(key)
    try:
        return tuple(Trial(**t) for t in entry["trials"]) if entry is not None else None
    except (TypeError, KeyError):
        return None


def will_measure(backbone: str, size: tuple[int, int], batch: int, precision: str = "auto",
                 device: torch.device = CPU, runtime: str = "auto") -> bool:
    """Whether choose_runtime with these arguments times the runtimes now (seconds of work):
    on a CPU, measuring on, a runtime to choose and nothing (readable) cached for them."""
    return _measures(device, runtime) and _cached_trials(
        _read_cache(cache_dir() / CACHE_FILE), cache_key(backbone, size, batch, precision)) is None


def choose_runtime(backbone: str, size: tuple[int, int], batch: int, precision: str = "auto",
                   device: torch.device = CPU, runtime: str = "auto", weights: str = "none",
                   hush: Callable[[], AbstractContextManager] = nullcontext) -> Choice:
    """The runtime and precision `--runtime auto` runs `backbone` with at `size` (h, w) and `batch`:
    on a CPU the fastest eligible trial (cached per machine), elsewhere the fixed rule. With a
    `runtime` named (and precision auto), the fastest eligible precision of that runtime.
    `weights`: the run's, measured with (the speed and the cosine do not depend on them, but the
    graph exported for the measurement is then the run's own, cached, not exported again).
    `hush`: see measure."""
    if runtime == ONNXRUNTIME:  # it runs fp32 only: nothing to measure
        return Choice(ONNXRUNTIME, resolve_precision(precision, device, ONNXRUNTIME),
                      how="--precision auto with --runtime onnxruntime: fp32, the only precision it runs")
    if not _measures(device, runtime):
        fixed = resolve_precision(precision, device, runtime)
        how = "not a CPU: torch" if device.type != "cpu" else f"fixed rule ({MEASURE_RUNTIMES_ENV}=0)"
        return Choice(resolve_runtime(runtime, device, fixed), fixed, how=how)
    path = cache_dir() / CACHE_FILE
    key = cache_key(backbone, size, batch, precision)
    trials = _cached_trials(_read_cache(path), key)
    cached = trials is not None
    if not cached:
        log.info("measuring the backbone runtimes for %s at %dx%d px, batch %d, once on this machine (cached in %s)",
                 backbone, *size, batch, path)
        trials = measure(backbone, size, batch, precision, weights=weights, hush=hush)
        cache = _read_cache(path)  # another process may have written meanwhile
        cache[key] = {"trials": [asdict(t) for t in trials], "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        _write_cache(path, cache)
    eligible = [t for t in trials if t.eligible and runtime in ("auto", t.runtime)]
    if not eligible:  # nothing ran: the eager model (what build_backbone does anyway), or the runtime named
        fallback = "torch" if runtime == "auto" else runtime
        return Choice(fallback, "fp32" if precision == "auto" else precision, trials, cached,
                      how="no runtime ran", among=runtime)
    best = max(eligible, key=lambda t: t.images_per_s)
    return Choice(best.runtime, best.precision, trials, cached, how="cached" if cached else "measured", among=runtime)
