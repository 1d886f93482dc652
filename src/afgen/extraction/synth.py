"""The embedded synthetic audio-visual dataset: clips whose sound is caused by what is seen.

Each class is a physical event drawn on a random background with random colours, sizes,
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
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np

from afgen.config import SynthConfig, to_dict
from afgen.contracts.splits import stratified_splits
from afgen.contracts.store import atomic_write_bytes
from afgen.errors import AfgenError
from afgen.lifecycle import process_pool
from afgen.progress import progress_bar

log = logging.getLogger(__name__)

LIST_NAME = "clips.csv"


@dataclass(frozen=True)
class Event:
    """One clip's motion and sound: position(t) for drawing, and the audio signal."""

    draw: Callable[[np.ndarray, float], None]  # draws the scene at time t onto a canvas
    audio: np.ndarray  # float32 mono samples


def _tone(t: np.ndarray, freq: np.ndarray | float) -> np.ndarray:
    """A sine whose frequency may change over time (phase is the integral of frequency)."""
    freq = np.broadcast_to(np.asarray(freq, np.float64), t.shape)
    phase = 2 * np.pi * np.cumsum(freq) * (t[1] - t[0])
    return np.sin(phase)


def _impacts(t: np.ndarray, times: list[float], rng, decay: float, freq: float | None) -> np.ndarray:
    """Sum of decaying bursts at the impact times: noise clicks (freq None) or tonal clangs."""
    out = np.zeros_like(t)
    for t0 in times:
        mask = t >= t0
        dt = t[mask] - t0
        env = np.exp(-dt / decay)
        src = rng.standard_normal(dt.shape) if freq is None else np.sin(2 * np.pi * freq * dt)
        out[mask] += env * src
    return out


def _bandnoise(n: int, rng, lo: float, hi: float, rate: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    spec[(f < lo) | (f > hi)] = 0
    noise = np.fft.irfft(spec, n)
    return noise / (np.abs(noise).max() + 1e-9)


def _colour(rng) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(60, 256, 3))


def _mark(img: np.ndarray, centre: tuple[float, float], size: float, col: tuple[int, int, int]) -> None:
    """The subtle cue: a small spot on the object, a little lighter than the object itself."""
    lighter = tuple(min(255, c + MARK_CONTRAST) for c in col)
    cv2.circle(img, (int(centre[0]), int(centre[1])), max(1, int(size)), lighter, -1, cv2.LINE_AA)


def _bounce(rng, s: int, t: np.ndarray, rate: int, sound: str = "thud", mark: bool = False) -> Event:
    """A ball bouncing on a floor: a noisy thud per impact, or (`sound="clang"`, a metal
    floor that looks the same) a ringing tone whose pitch only the sound reveals. With `mark`
    (`--cue subtle`) the clang ball carries a faint spot: visible, but only just."""
    period, phase = rng.uniform(0.45, 1.0), rng.uniform(0, 1)
    x, r, col = rng.uniform(0.25, 0.75) * s, rng.uniform(0.05, 0.09) * s, _colour(rng)
    floor, top = 0.85 * s, rng.uniform(0.15, 0.4) * s

    def height(tt: float) -> float:  # parabola between impacts; impact at u = 0
        u = ((tt / period + phase) % 1.0) * 2 - 1
        return floor - r - (floor - r - top) * (1 - u * u)

    def draw(img, tt):
        cv2.line(img, (0, int(floor)), (s, int(floor)), (200, 200, 200), 2)
        cv2.circle(img, (int(x), int(height(tt))), int(r), col, -1, cv2.LINE_AA)
        if mark:
            _mark(img, (x, height(tt)), r / 3, col)

    hits = [(k - phase + 0.5) * period for k in range(-1, 20)]
    hits = [h for h in hits if 0 <= h < t[-1]]
    sound_rng = np.random.default_rng(rng.integers(2**63))  # one draw either way: same pictures
    if sound == "clang":
        return Event(draw, _impacts(t, hits, sound_rng, decay=0.12, freq=sound_rng.uniform(600, 1400)))
    return Event(draw, _impacts(t, hits, sound_rng, decay=0.012, freq=None))


def _roll(rng, s: int, t: np.ndarray, rate: int) -> Event:
    speed = rng.uniform(0.3, 1.2)  # screen widths per second
    start, r, col = rng.uniform(0, 1), rng.uniform(0.06, 0.1) * s, _colour(rng)
    y = rng.uniform(0.5, 0.8) * s

    def draw(img, tt):
        cx = ((start + speed * tt) % 1.2 - 0.1) * s
        cv2.circle(img, (int(cx), int(y)), int(r), col, -1, cv2.LINE_AA)
        ang = speed * tt * s / r
        cv2.line(img, (int(cx), int(y)), (int(cx + r * np.cos(ang)), int(y + r * np.sin(ang))),
                 (20, 20, 20), 2, cv2.LINE_AA)

    rumble = _bandnoise(len(t), rng, 60, 250 + 500 * speed, rate)
    return Event(draw, 0.6 * rumble + 0.4 * _tone(t, 60 + 140 * speed))


def _spin(rng, s: int, t: np.ndarray, rate: int) -> Event:
    omega = rng.uniform(0.5, 2.0) * rng.choice([-1, 1])  # turns per second
    phase, length, col = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.4) * s, _colour(rng)
    cx, cy = rng.uniform(0.4, 0.6, 2) * s

    def draw(img, tt):
        a = phase + 2 * np.pi * omega * tt
        d = np.array([np.cos(a), np.sin(a)]) * length
        cv2.line(img, (int(cx - d[0]), int(cy - d[1])), (int(cx + d[0]), int(cy + d[1])), col, 4,
                 cv2.LINE_AA)

    hum = _tone(t, 150 + 250 * abs(omega)) * (0.6 + 0.4 * np.abs(np.cos(2 * np.pi * omega * t)))
    return Event(draw, hum)


def _hammer(rng, s: int, t: np.ndarray, rate: int, sound: str = "ring", mark: bool = False) -> Event:
    """A hammer falling onto an anvil: a ringing metal tone per blow, or (`sound="knock"`, a
    wooden block that looks the same) a short dull knock."""
    period, phase = rng.uniform(0.4, 0.9), rng.uniform(0, 1)
    w, col = rng.uniform(0.1, 0.18) * s, _colour(rng)
    x0, anvil = rng.uniform(0.3, 0.6) * s, 0.7 * s
    pitch = rng.uniform(900, 1500)

    def draw(img, tt):
        u = (tt / period + phase) % 1.0
        lift = 0.35 * s * (1 - u) ** 2  # falls fast onto the anvil at u = 1
        cv2.rectangle(img, (int(x0 - w), int(anvil)), (int(x0 + 2 * w), int(anvil + 0.1 * s)),
                      (150, 150, 150), -1)
        y = anvil - lift
        cv2.rectangle(img, (int(x0), int(y - w)), (int(x0 + w), int(y)), col, -1)
        if mark:
            _mark(img, (x0 + w / 2, y - w / 2), w / 4, col)

    hits = [(k + 1 - phase) * period for k in range(-1, 20)]
    hits = [h for h in hits if 0 <= h < t[-1]]
    sound_rng = np.random.default_rng(rng.integers(2**63))  # one draw either way: same pictures
    if sound == "knock":
        return Event(draw, _impacts(t, hits, sound_rng, decay=0.025, freq=pitch / 6))
    return Event(draw, _impacts(t, hits, sound_rng, decay=0.08, freq=pitch))


def _swing(rng, s: int, t: np.ndarray, rate: int) -> Event:
    period, amp, phase = rng.uniform(0.8, 1.6), rng.uniform(0.4, 0.9), rng.uniform(0, 2 * np.pi)
    length, col = rng.uniform(0.45, 0.6) * s, _colour(rng)
    px = rng.uniform(0.4, 0.6) * s

    def angle(tt):
        return amp * np.sin(2 * np.pi * tt / period + phase)

    def draw(img, tt):
        a = angle(tt)
        bx, by = px + length * np.sin(a), 0.1 * s + length * np.cos(a)
        cv2.line(img, (int(px), int(0.1 * s)), (int(bx), int(by)), (220, 220, 220), 1, cv2.LINE_AA)
        cv2.circle(img, (int(bx), int(by)), int(0.07 * s), col, -1, cv2.LINE_AA)

    speed = np.abs(np.cos(2 * np.pi * t / period + phase))  # |d angle / dt|, normalised
    whoosh = _bandnoise(len(t), rng, 300, 1200 + 2000 * amp, rate)
    return Event(draw, whoosh * speed**2)


def _rise(rng, s: int, t: np.ndarray, rate: int) -> Event:
    period, phase = rng.uniform(1.0, 2.5), rng.uniform(0, 1)
    x, r, col = rng.uniform(0.2, 0.8) * s, rng.uniform(0.05, 0.08) * s, _colour(rng)

    def height(tt):  # 0 at the bottom, 1 at the top, triangle wave
        u = (np.asarray(tt) / period + phase) % 1.0
        return 1 - np.abs(2 * u - 1)

    def draw(img, tt):
        y = (0.85 - 0.7 * height(tt)) * s
        cv2.rectangle(img, (int(x - r), int(y - r)), (int(x + r), int(y + r)), col, -1)

    return Event(draw, _tone(t, 300 + 900 * height(t)))


def _pulse(rng, s: int, t: np.ndarray, rate: int) -> Event:
    period, phase = rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi)
    cx, cy = rng.uniform(0.35, 0.65, 2) * s
    col, freq = _colour(rng), rng.uniform(400, 700)

    def size(tt):
        return 0.5 + 0.5 * np.sin(2 * np.pi * np.asarray(tt) / period + phase)

    def draw(img, tt):
        cv2.circle(img, (int(cx), int(cy)), int((0.05 + 0.25 * size(tt)) * s), col, 3, cv2.LINE_AA)

    return Event(draw, _tone(t, freq) * size(t))


def _shake(rng, s: int, t: np.ndarray, rate: int) -> Event:
    freq, amp = rng.uniform(2.0, 5.0), rng.uniform(0.04, 0.1) * s
    cx, cy, w, col = *rng.uniform(0.35, 0.65, 2) * s, rng.uniform(0.08, 0.14) * s, _colour(rng)
    phase = rng.uniform(0, 1)

    def draw(img, tt):
        dx = amp * np.sin(2 * np.pi * (freq * tt + phase))
        cv2.rectangle(img, (int(cx + dx - w), int(cy - w)), (int(cx + dx + w), int(cy + w)), col, -1)

    turns = [(k / 2 + 0.25 - phase) / freq for k in range(-2, 40)]  # direction changes
    turns = [h for h in turns if 0 <= h < t[-1]]
    return Event(draw, _impacts(t, turns, rng, decay=0.03, freq=None) * 0.7)


#: The classes, in order; `--classes N` uses the first N. "clang" looks exactly like
#: "bounce" and "knock" exactly like "hammer": only their sound tells them apart, so from 7
#: classes on, audio carries information that vision does not (the paper's premise).
CLASSES: dict[str, Callable] = {
    "bounce": _bounce, "roll": _roll, "spin": _spin, "hammer": _hammer,
    "swing": _swing, "rise": _rise, "clang": partial(_bounce, sound="clang"),
    "knock": partial(_hammer, sound="knock"), "pulse": _pulse, "shake": _shake,
}
#: Pairs of classes that look the same and differ only in their sound.
SOUND_ONLY_PAIRS: tuple[tuple[str, str], ...] = (("bounce", "clang"), ("hammer", "knock"))
#: With `--cue subtle`, the second class of each pair carries a small spot this many levels
#: lighter than its object: the pictures then tell the pair apart, but a frozen backbone's
#: features barely do, so the audio seen in training has something to teach.
MARK_CONTRAST = 24


def visual_ceiling(labels: list[str], cue: str = "none") -> float:
    """The best top-1 accuracy any classifier that sees only the pictures can reach on
    balanced classes `labels`: both classes of a look-alike pair are at chance between them
    (for the demo's 8 classes, two pairs: 75%); with the subtle cue every class is visible."""
    if cue == "subtle":
        return 1.0
    pairs = sum(a in labels and b in labels for a, b in SOUND_ONLY_PAIRS)
    return (len(labels) - pairs) / len(labels)


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
    distractor = (rng.uniform(0.1, 0.9, 2) * cfg.size).astype(int), _colour(rng)
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
