"""The synthetic dataset's classes: each a physical event drawn frame by frame, with the sound
that same motion makes (impacts click, speed sets pitch, a swing whooshes as fast as it swings).
synth.py draws a clip of one of them on a background and writes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np


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


def random_colour(rng) -> tuple[int, int, int]:
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
    x, r, col = rng.uniform(0.25, 0.75) * s, rng.uniform(0.05, 0.09) * s, random_colour(rng)
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
    start, r, col = rng.uniform(0, 1), rng.uniform(0.06, 0.1) * s, random_colour(rng)
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
    phase, length, col = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.4) * s, random_colour(rng)
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
    w, col = rng.uniform(0.1, 0.18) * s, random_colour(rng)
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
    length, col = rng.uniform(0.45, 0.6) * s, random_colour(rng)
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
    x, r, col = rng.uniform(0.2, 0.8) * s, rng.uniform(0.05, 0.08) * s, random_colour(rng)

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
    col, freq = random_colour(rng), rng.uniform(400, 700)

    def size(tt):
        return 0.5 + 0.5 * np.sin(2 * np.pi * np.asarray(tt) / period + phase)

    def draw(img, tt):
        cv2.circle(img, (int(cx), int(cy)), int((0.05 + 0.25 * size(tt)) * s), col, 3, cv2.LINE_AA)

    return Event(draw, _tone(t, freq) * size(t))


def _shake(rng, s: int, t: np.ndarray, rate: int) -> Event:
    freq, amp = rng.uniform(2.0, 5.0), rng.uniform(0.04, 0.1) * s
    cx, cy, w, col = *rng.uniform(0.35, 0.65, 2) * s, rng.uniform(0.08, 0.14) * s, random_colour(rng)
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
