"""Uncertainty of accuracies: a seeded bootstrap over test clips, paired across methods.

A table makes many comparisons; `Bootstrap.family` gives every comparison of a family its
simultaneous interval (max-|T| over the bootstrap replicates), so the verdicts it supports
hold together at the stated confidence, not one by one.

Scores come as 0/1 correctness arrays [R, D, N]: R repeats (training seeds), D missing-audio
mask draws, N test clips. An accuracy is their mean. One bootstrap replicate resamples the
clips, the mask draws and the seeds (each with replacement), so the interval holds the
spread of all three: which clips were tested, which of them lost their audio, and how
training happened to go. Every method is resampled with the *same* replicate weights, so a
paired difference cancels what the methods share (the hard clips) and a method compared with
itself is exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from afgen.config import EvalConfig


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval (fractions, not percent)."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


class Bootstrap:
    """Fixed resampling weights for scores of shape [R, D, N], shared by every method."""

    def __init__(self, shape: tuple[int, int, int], resamples: int = EvalConfig.bootstrap,
                 seed: int = EvalConfig.seed, confidence: float = EvalConfig.confidence) -> None:
        self.shape = shape
        self.confidence = confidence
        rng = np.random.default_rng([seed, 0xB007])
        # Per axis, how often each repeat / draw / clip is drawn in each replicate: [B, n].
        self.counts = [rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.uint16 if n < 65_536 else np.uint32)
                       for n in shape]

    def _replicates(self, scores: np.ndarray, chunk: int = 256) -> np.ndarray:
        scores = scores.astype(np.float64)
        out = []
        for start in range(0, len(self.counts[0]), chunk):
            w_r, w_d, w_n = (c[start:start + chunk] / n for c, n in zip(self.counts, self.shape))
            out.append(np.einsum("br,bd,bn,rdn->b", w_r, w_d, w_n, scores, optimize=True))
        return np.concatenate(out)

    def _interval(self, value: float, replicates: np.ndarray) -> Interval:
        tail = 100 * (1 - self.confidence) / 2
        low, high = (float(x) for x in np.percentile(replicates, [tail, 100 - tail]))
        # Constant scores give replicates equal to the estimate up to float rounding.
        if abs(low - value) < 1e-12:
            low = value
        if abs(high - value) < 1e-12:
            high = value
        return Interval(float(value), low, high)

    def accuracy(self, scores: np.ndarray) -> Interval:
        """Mean correctness and its interval."""
        self._check(scores)
        return self._interval(float(scores.mean()), self._replicates(scores))

    def difference(self, a: np.ndarray, b: np.ndarray) -> Interval:
        """Paired difference mean(a) - mean(b) and its interval (same replicates for both)."""
        return self._interval(*self._paired(a, b))

    def _paired(self, a: np.ndarray, b: np.ndarray, chunk: int = 256) -> tuple[float, np.ndarray]:
        """mean(a) - mean(b) and its bootstrap replicates, a and b resampled together."""
        self._check(a)
        self._check(b)
        diff = a.astype(np.float64) - b.astype(np.float64)
        return float(diff.mean()), self._replicates(diff, chunk)

    def family(self, pairs: dict, chunk: int = 256) -> dict:
        """Paired differences for a whole family of comparisons, each with its unadjusted and
        its simultaneous interval: the max-|T| bootstrap (the distribution over replicates of the
        largest standardised deviation across the family), so that all the family's intervals
        hold together with the stated confidence, however many comparisons it makes.
        Comparisons without spread (a method against itself) keep their exact interval and do
        not count. Returns key -> (unadjusted Interval, simultaneous Interval)."""
        values, reps = {}, {}
        for key, (a, b) in pairs.items():
            values[key], reps[key] = self._paired(a, b, chunk)
        spread = {k: float(np.std(r)) for k, r in reps.items()}
        varying = [k for k in pairs if spread[k] > 1e-12]
        q = 0.0
        if varying:
            t = np.max(np.stack([np.abs(reps[k] - values[k]) / spread[k] for k in varying]), axis=0)
            q = float(np.quantile(t, self.confidence))
        out = {}
        for key in pairs:
            raw = self._interval(values[key], reps[key])
            if key in varying:
                adjusted = Interval(values[key], min(raw.low, values[key] - q * spread[key]),
                                    max(raw.high, values[key] + q * spread[key]))
            else:
                adjusted = raw
            out[key] = (raw, adjusted)
        return out

    def _check(self, scores: np.ndarray) -> None:
        if scores.shape != self.shape:
            raise ValueError(f"scores of shape {scores.shape}; this bootstrap was built for {self.shape}")


def verdict(diff: Interval) -> str:
    """'better' or 'worse' when the paired interval excludes 0, else 'no resolvable difference'."""
    if diff.low > 0:
        return "better"
    if diff.high < 0:
        return "worse"
    return "no resolvable difference"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    arr = np.asarray(values, np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
