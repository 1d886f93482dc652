"""Optical flow between consecutive sampled frames (OpenCV) and its encodings as images.

Flow k goes from frame k to frame k+1, so t frames give t-1 flows. Encodings turn a flow
field into a 3-channel uint8 image an ImageNet backbone can read: `hsv` (the seed) and
`xy` (TSN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from afgen.config import DIS_PRESETS, FLOW_ENCODINGS, FlowConfig
from afgen.encoders.registry import FLOWS
from afgen.errors import AfgenError

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def is_learned(cfg: FlowConfig) -> bool:
    """A learned flow (RAFT) runs with torch beside the backbone, not in the producers."""
    return FLOWS.get(cfg.algorithm).learned


def make_flow(cfg: FlowConfig = FlowConfig()) -> FlowFn:
    """A function (gray0, gray1) -> flow [H, W, 2] float32 in pixels, for cfg.algorithm (a
    classic entry of the FLOWS registry)."""
    entry = FLOWS.get(cfg.algorithm)
    if entry.learned:
        classic = ", ".join(e.name for e in FLOWS if not e.learned)
        raise AfgenError(f"--flow {cfg.algorithm} runs with the backbone in `afgen extract` (torch); this command "
                         f"takes the OpenCV algorithms: {classic}")
    return entry.load()(cfg)


def farneback(cfg: FlowConfig) -> FlowFn:
    """cv2.calcOpticalFlowFarneback with the seed's parameters (FlowConfig.farneback_*)."""
    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(
            a, b, None, cfg.farneback_pyr_scale, cfg.farneback_levels, cfg.farneback_winsize,
            cfg.farneback_iterations, cfg.farneback_poly_n, cfg.farneback_poly_sigma, cfg.farneback_flags)
    return flow


def dis(cfg: FlowConfig) -> FlowFn:
    """OpenCV's DIS optical flow at cfg.dis_preset (ultrafast | fast | medium)."""
    if cfg.dis_preset not in DIS_PRESETS:
        raise AfgenError(f"unknown DIS preset {cfg.dis_preset!r}; use {', '.join(DIS_PRESETS)}")
    method = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{cfg.dis_preset.upper()}"))
    return lambda a, b: method.calc(a, b, None)


def tvl1(cfg: FlowConfig) -> FlowFn:
    """OpenCV contrib's Dual TV-L1 optical flow."""
    if not hasattr(cv2, "optflow"):
        raise AfgenError("TV-L1 needs opencv-contrib-python-headless (cv2.optflow is missing); "
                         "install it in place of any other OpenCV package")
    method = cv2.optflow.DualTVL1OpticalFlow_create()
    return lambda a, b: method.calc(a, b, None)


def encode_hsv(flow: np.ndarray, min_range: float = FlowConfig.hsv_min_range) -> np.ndarray:
    """The seed's encoding: hue = direction, saturation = 255, value = min-max magnitude.

    The magnitude is normalised over max(max - min, min_range) pixels, so a still frame
    (all magnitudes near zero) stays dark instead of stretching noise to full brightness.
    """
    fx, fy = flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32)
    mag, ang = cv2.cartToPolar(fx, fy)
    lo = float(mag.min())
    span = max(float(mag.max()) - lo, min_range)
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (ang * (90.0 / np.pi)).astype(np.uint8) % 180  # OpenCV hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip((mag - lo) * (255.0 / span), 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def encode_xy(flow: np.ndarray, bound: float = FlowConfig.xy_bound) -> np.ndarray:
    """TSN's encoding: x and y clipped to +-bound px, scaled to 0..255; third channel their mean."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    x, y = scaled[..., 0], scaled[..., 1]
    return np.rint(np.stack([x, y, (x + y) / 2], axis=-1)).astype(np.uint8)


def make_encoder(cfg: FlowConfig = FlowConfig()) -> Callable[[np.ndarray], np.ndarray]:
    """A function flow [H, W, 2] -> uint8 image [H, W, 3] for cfg.encoding."""
    if cfg.encoding == "hsv":
        return lambda f: encode_hsv(f, cfg.hsv_min_range)
    if cfg.encoding == "xy":
        return lambda f: encode_xy(f, cfg.xy_bound)
    raise AfgenError(f"unknown flow encoding {cfg.encoding!r}; use {', '.join(FLOW_ENCODINGS)}")


def gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def iter_flow_images(frames: Iterable[np.ndarray], cfg: FlowConfig = FlowConfig()) -> Iterator[np.ndarray]:
    """For RGB frames f0, f1, ... yield the encoded flow images f0->f1, f1->f2, ... (t-1 of them)."""
    flow_fn, encode = make_flow(cfg), make_encoder(cfg)
    previous = None
    for rgb in frames:
        current = gray(rgb)
        if previous is not None:
            yield encode(flow_fn(previous, current))
        previous = current


def flow_images(frames: np.ndarray, cfg: FlowConfig = FlowConfig()) -> np.ndarray:
    """Encoded flow images [t-1, H, W, 3] for RGB frames [t, H, W, 3]."""
    out = list(iter_flow_images(frames, cfg))
    if not out:
        raise AfgenError(f"optical flow needs at least 2 frames, got {len(frames)}")
    return np.stack(out)
