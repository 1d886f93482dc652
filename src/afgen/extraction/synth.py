"""The embedded synthetic audio-visual dataset: clips whose sound is caused by what is seen.

Each class (synth_events.py) is a physical event drawn on a random background with random colours, sizes,
speeds and phases; its sound is computed from the same motion (impacts click, speed sets
pitch, swinging makes a whoosh as fast as the swing), so predicting the audio feature needs
the motion, not one frame. Clips are H.264 + AAC mp4 files written with PyAV in the
folder-per-class layout, plus `clips.csv` with a stratified train/val/test split. The same
seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from afgen.config import SynthConfig, to_dict
from afgen.contracts.splits import stratified_splits
from afgen.contracts.store import atomic_write_bytes
from afgen.errors import AfgenError
from afgen.extraction.synth_events import CLASSES, SOUND_ONLY_PAIRS, random_colour, visual_ceiling
from afgen.lifecycle import process_pool
from afgen.progress import progress_bar

log = logging.getLogger(__name__)

LIST_NAME = "clips.csv"


def _background(rng, s: int) -> np.ndarray:
    base = rng.integers(0, 90, 3).astype(np.float32)
    grad = np.linspace(0, 1, s, dtype=np.float32)[:, None, None] * rng.uniform(-40, 40, 3)
    texture = cv2.GaussianBlur(rng.normal(0, 12, (s, s, 3)).astype(np.float32), (0, 0), 2)
    return np.clip(base + grad + texture, 0, 255).astype(np.uint8)


def make_clip(label: str, rng: np.random.Generator, cfg: SynthConfig) -> tuple[list[np.ndarray], np.ndarray, float]:
    """Frames, audio and frame rate of one clip of class `label`."""
    fps = float(cfg.frame_rates[int(rng.integers(len(cfg.frame_rates)))])
    n_audio = int(round(cfg.seconds * cfg.audio_rate))
    t_audio = np.arange(n_audio) / cfg.audio_rate
    marked = cfg.cue == "subtle" and any(label == b for _, b in SOUND_ONLY_PAIRS)
    event = CLASSES[label](rng, cfg.size, t_audio, cfg.audio_rate, **({"mark": True} if marked else {}))
    background = _background(rng, cfg.size)
    distractor = (rng.uniform(0.1, 0.9, 2) * cfg.size).astype(int), random_colour(rng)
    frames = []
    for i in range(int(round(cfg.seconds * fps))):
        img = background.copy()
        cv2.circle(img, tuple(int(v) for v in distractor[0]), cfg.size // 14, distractor[1], -1)
        event.draw(img, i / fps)
        noise = rng.normal(0, 4, img.shape)
        frames.append(np.clip(img + noise, 0, 255).astype(np.uint8))
    audio = event.audio / (np.abs(event.audio).max() + 1e-9) * rng.uniform(0.3, 0.7)
    audio = audio + rng.normal(0, rng.uniform(0.003, 0.02), audio.shape)
    return frames, np.clip(audio, -1, 1).astype(np.float32), fps


def write_clip(path: Path, frames: list[np.ndarray], audio: np.ndarray | None, fps: float,
               audio_rate: int) -> None:
    """Write an H.264 (+ AAC when audio is given) mp4 atomically with PyAV."""
    tmp = path.with_name(f".{path.name}.tmp")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(tmp), "w", format="mp4") as container:
        # Constant QP and one thread: x264's rate control (and its frame threads) made the
        # bytes vary run to run, and byte-identical clips are part of the contract.
        video = container.add_stream("libx264", rate=rate, options={"preset": "fast", "qp": "20"})
        video.codec_context.thread_count = 1
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=audio_rate)
            astream.layout = "mono"
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if astream is not None:
            step = 1024
            for start in range(0, len(audio), step):
                chunk = audio[start:start + step][None, :]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                                   layout="mono")
                frame.sample_rate, frame.pts = audio_rate, start
                container.mux(astream.encode(frame))
            container.mux(astream.encode())
    os.replace(tmp, path)


def _write_one(path: Path, label: str, seed: list[int], silent: bool, cfg: SynthConfig) -> None:
    frames, audio, fps = make_clip(label, np.random.default_rng(seed), cfg)
    write_clip(path, frames, None if silent else audio, fps, cfg.audio_rate)


def generate(out: str | Path, cfg: SynthConfig = SynthConfig(), show_progress: bool = True) -> Path:
    """Write the synthetic dataset under `out`; returns what to give `discover`: the path of its
    CSV list (clips.csv), or with `cfg.layout == "mit"` the folder in Moments in Time's layout.

    Existing clips are kept (writes are atomic, so a finished file is complete), which makes
    a rerun after an interruption finish the rest. Each clip has its own seeded generator, so
    `cfg.workers` processes write the same bytes as one.
    """
    if not 1 <= cfg.classes <= len(CLASSES):
        raise AfgenError(f"--classes must be between 1 and {len(CLASSES)}, got {cfg.classes}")
    if not 0.0 <= cfg.missing_audio <= 1.0:
        raise AfgenError(f"--missing-audio is a fraction in [0, 1], got {cfg.missing_audio}")
    if cfg.clips_per_class < 1:
        raise AfgenError(f"--clips-per-class must be at least 1, got {cfg.clips_per_class}")
    if cfg.layout not in ("folders", "mit"):
        raise AfgenError(f"--layout is folders or mit, got {cfg.layout!r}")
    out = Path(out)
    labels = list(CLASSES)[: cfg.classes]
    names, todo = [], []
    for ci, label in enumerate(labels):
        silent_rng = np.random.default_rng([cfg.seed, ci, 10**6])
        n_silent = int(round(cfg.missing_audio * cfg.clips_per_class))
        silent = set(silent_rng.permutation(cfg.clips_per_class)[:n_silent].tolist())
        names += [(f"{label}/{label}_{k:04d}.mp4", label, ci, k, k in silent) for k in range(cfg.clips_per_class)]
    # The split depends on the clip's name only, so both layouts split the same clips alike.
    splits = stratified_splits({name: label for name, label, *_ in names}, cfg.val_fraction, cfg.test_fraction,
                               seed=cfg.seed)
    rows = []
    for name, label, ci, k, silent in names:
        rel = name if cfg.layout == "folders" else f"{_MIT_FOLDER[splits[name]]}/{name}"
        if not (out / rel).exists():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            todo.append((out / rel, label, [cfg.seed, ci, k], silent, cfg))
        rows.append((rel, label, splits[name]))
    with progress_bar(len(rows), "synth", enabled=show_progress) as bar:
        bar.advance(len(rows) - len(todo))
        if cfg.workers > 1 and len(todo) > 1:
            with process_pool(min(cfg.workers, len(todo))) as pool:
                for future in [pool.submit(_write_one, *job) for job in todo]:
                    future.result()
                    bar.advance()
        else:
            for job in todo:
                _write_one(*job)
                bar.advance()
    listing = _write_mit_lists(out, rows, labels) if cfg.layout == "mit" else _write_list(out, rows)
    settings = {k: v for k, v in to_dict(cfg).items() if k != "workers"}  # workers do not change the bytes
    (out / "synth.json").write_text(json.dumps({"synth": settings, "classes": labels,
                                                "visual_ceiling": visual_ceiling(labels, cfg.cue)}, indent=2))
    log.info("wrote %d clips of %d classes to %s", len(rows), len(labels), out)
    return listing


#: MiT has training/ and validation/ only: val and test clips go to validation/.
_MIT_FOLDER = {"train": "training", "val": "validation", "test": "validation"}
#: A class MiT's CSVs list whose folder the synthetic MiT copy leaves out, as users do.
ABSENT_CLASS = "singing"


def _write_list(out: Path, rows: list[tuple[str, str, str]]) -> Path:
    """clips.csv: `path,label,split` with a header."""
    listing = out / LIST_NAME
    tmp = listing.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    os.replace(tmp, listing)
    return listing


def _write_mit_lists(out: Path, rows: list[tuple[str, str, str]], labels: list[str]) -> Path:
    """MiT's own files: trainingSet.csv / validationSet.csv (`class/file,label,agree,disagree`,
    no header) listing every class, including one whose folder is absent and one clip whose
    file is missing, and moments_categories.txt (`name,index`, alphabetical like MiT's)."""
    for folder, csv_name in (("training", "trainingSet.csv"), ("validation", "validationSet.csv")):
        lines = [f"{rel.split('/', 1)[1]},{label},3,0" for rel, label, _ in rows if rel.startswith(folder + "/")]
        lines += [f"{ABSENT_CLASS}/{ABSENT_CLASS}_{k:04d}.mp4,{ABSENT_CLASS},2,1" for k in range(2)]
        if folder == "training":
            lines.append(f"{labels[0]}/{labels[0]}_missing.mp4,{labels[0]},3,0")  # listed, never copied
        atomic_write_bytes(out / csv_name, ("\n".join(lines) + "\n").encode())
    categories = sorted(set(CLASSES) | {ABSENT_CLASS})
    atomic_write_bytes(out / "moments_categories.txt",
                       "".join(f"{name},{i}\n" for i, name in enumerate(categories)).encode())
    return out
