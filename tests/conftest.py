"""Shared fixtures: tiny clips written with PyAV (H.264 + AAC), made fresh by each test."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from afgen.config import CACHE_DIR_ENV, TrainConfig

# `--runtime auto` measures and caches per machine: the tests (and the CLI processes they start)
# share one fresh cache of their own, never the user's.
os.environ[CACHE_DIR_ENV] = tempfile.mkdtemp(prefix="afgen-test-cache-")


def write_clip(
    path: Path,
    fps: float = 25.0,
    seconds: float = 2.0,
    size: int = 64,
    audio: bool = True,
    tone_hz: float = 440.0,
    audio_rate: int = 16_000,
    times: list[float] | None = None,
    start: float = 0.0,
) -> Path:
    """A clip with a square moving right by 2 px per frame and a sine tone.

    `times` gives explicit frame times in seconds (variable frame rate); `start` offsets
    every timestamp, so the stream starts late.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if times is None:
        times = [i / fps for i in range(int(round(seconds * fps)))]
    with av.open(str(path), "w", format="mp4") as container:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream("libx264", rate=rate, options={"threads": "1"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        tb = Fraction(1, 90_000)
        stream.codec_context.time_base = tb
        stream.time_base = tb
        astream = None
        if audio:
            astream = container.add_stream("aac", rate=audio_rate)
            astream.layout = "mono"
        rng = np.random.default_rng(0)
        texture = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        for i, t in enumerate(times):
            img = (texture // 3).copy()
            x = (4 + 2 * i) % (size - 16)
            img[20:36, x:x + 16] = texture[20:36, 0:16]
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = int(round((t + start) / tb))
            frame.time_base = tb
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
        if astream is not None:
            total = times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1 / fps)
            n = int(round(total * audio_rate))
            wave = (0.5 * np.sin(2 * np.pi * tone_hz * np.arange(n) / audio_rate)).astype(np.float32)
            for s in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(wave[None, s:s + 1024].copy(), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = audio_rate, s
                container.mux(astream.encode(frame))
            container.mux(astream.encode())
    return path


@pytest.fixture
def clip_factory(tmp_path):
    """Call with a file name (and write_clip options) to get a fresh clip under tmp_path."""

    def make(name: str = "clip.mp4", **kwargs) -> Path:
        return write_clip(tmp_path / name, **kwargs)

    return make


TINY_TRAIN = TrainConfig(epochs=4, hidden=32, fusion_hidden=32, batch_size=8, patience=10)
TINY_SYNTH = dict(classes=3, clips_per_class=6, size=48, seconds=1.0, missing_audio=0.2)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A synthetic dataset (3 classes x 6 clips, some silent) extracted with a random ResNet18."""
    from afgen.config import ExtractConfig, SynthConfig, VideoConfig
    from afgen.extraction.dataset import discover
    from afgen.extraction.extract import extract
    from afgen.extraction.synth import generate

    root = tmp_path_factory.mktemp("tiny")
    listing = generate(root / "clips", SynthConfig(**TINY_SYNTH), show_progress=False)
    extract(discover(listing), root / "features",
            ExtractConfig(backbone="resnet18", weights="none", workers=0, batch_size=8, precision="fp32"),
            VideoConfig(height=32, width=32), show_progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_store):
    """A run trained for a few epochs on tiny_store."""
    from afgen.learning.train import train

    train(tiny_store / "features", tiny_store / "run", TINY_TRAIN, show_progress=False)
    return tiny_store / "run"


def extract_cmd(data: Path, out: Path, workers: int = 0) -> list[str]:
    """`afgen extract` as a subprocess command: a random ResNet18 at 32 px, small batches."""
    import sys

    return [sys.executable, "-m", "afgen", "extract", str(data), str(out), "--backbone", "resnet18", "--weights", "none",
            "--size", "32", "--workers", str(workers), "--batch-size", "4", "--precision", "fp32"]


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int = 1, bf16: bool = True) -> None:
    """torch.cuda as a machine with `count` GPUs (with bf16 or without) would answer it: the one
    faked GPU of every test that needs one (nothing can run on it)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


def python_loading(code: str, *args: str, module: str = "torch") -> list[str]:
    """A `python -c` command that runs `code` (`sys` imported, sys.argv[1:] = args) and, however it
    ends, says last on stderr whether it loaded `module` ("torch loaded: False"): read with `loaded`."""
    import sys
    import textwrap

    wrapped = (f"import sys\ntry:\n{textwrap.indent(code, '    ')}\nfinally:\n"
               f"    print({module!r}, 'loaded:', {module!r} in sys.modules, file=sys.stderr)\n")
    return [sys.executable, "-c", wrapped, *args]


def afgen_loading(*args: str | Path, module: str = "torch") -> list[str]:
    """`afgen ARGS` as a `python_loading` command: its exit code is afgen's."""
    return python_loading("from afgen.cli import main\nmain(sys.argv[1:])", *map(str, args), module=module)


def loaded(stderr: str, module: str = "torch") -> bool:
    """Whether a `python_loading` process said it loaded `module` (it must have said)."""
    said = [line for line in stderr.splitlines() if line.startswith(f"{module} loaded: ")]
    assert said, f"the process did not say whether it loaded {module}: {stderr[-2000:]}"
    return said[-1] == f"{module} loaded: True"


def other_lines(stderr: str, module: str = "torch") -> list[str]:
    """A `python_loading` process's stderr without its line on `module`."""
    return [line for line in stderr.splitlines() if not line.startswith(f"{module} loaded: ")]


@contextmanager
def lines_held(path: Path) -> Iterator[None]:
    """Hold the lock (flock) afgen takes to append a line to `path` (a store's manifest.jsonl, a
    predictions file): a run writing it stops at its next line until the block ends. With
    `wait_until_waiting`, a test stops a run at a known point whatever the machine's load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def wait_until_waiting(path: Path, proc: subprocess.Popen) -> None:
    """Return once `proc` waits for the lock of `path` (Linux: /proc/locks); fail if it ends
    first. No deadline: a correct run either reaches that line or ends."""
    import time

    st = path.stat()
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    while proc.poll() is None:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields and fields[-4:-2] == [str(proc.pid), where]:
                return
        time.sleep(0.02)
    raise AssertionError(f"the run ended (exit {proc.returncode}) before it waited to write {path}")
