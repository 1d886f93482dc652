"""Every backbone runtime available here, side by side, in one process: images per second and
the lowest cosine of its features to fp32 eager torch, on the same batches.

    python benchmarks/bench_runtimes.py [--backbone resnet50] [--batches 6] [--quick]

Prints the CPU's bf16 flags and what `--runtime auto` resolves to. Random weights (the weights
do not change the speed), 224 px, batch 16, threads as `afgen extract` gives the backbone with
one producer on this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import numpy as np
import torch

from afgen.encoders.backbones import build_backbone, resolve_precision
from afgen.encoders.onnx_runtime import available as ort_available
from afgen.encoders.onnx_runtime import resolve_runtime
from afgen.encoders.openvino_runtime import available as ov_available
from afgen.encoders.openvino_runtime import supports_bf16 as ov_bf16


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = sorted(set(re.findall(r"\b(amx_bf16|avx512_bf16|avx512f|avx2)\b", text)))
    model = re.search(r"model name\s*:\s*(.+)", text)
    return f"{model.group(1).strip() if model else 'unknown CPU'}; flags: {', '.join(flags) or 'none of avx2/avx512/amx'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--quick", action="store_true", help="resnet18 at 112 px, 2 batches (a smoke run, not for figures)")
    args = ap.parse_args()
    name, size, batches = (("resnet18", 112, 2) if args.quick else (args.backbone, 224, args.batches))
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1) if (os.cpu_count() or 1) > 2 else os.cpu_count() or 1)
    images = np.random.default_rng(0).integers(0, 255, (16 * batches, size, size, 3), dtype=np.uint8)
    cpu = torch.device("cpu")
    candidates = [("torch", "fp32")]
    if resolve_precision("auto", cpu) == "bf16":
        candidates.append(("torch", "bf16"))
    if ort_available():
        candidates.append(("onnxruntime", "fp32"))
    if ov_available():
        candidates.append(("openvino", "fp32"))
        if ov_bf16():
            candidates.append(("openvino", "bf16"))
    print(f"{cpu_flags()}; {torch.get_num_threads()} backbone threads; {name} at {size} px, batch 16")
    reference = None
    rows = []
    for runtime, precision in candidates:
        backbone = build_backbone(name, "none", "cpu", precision, batch_size=16, runtime=runtime)
        backbone(images[:16])  # warm up
        start = time.perf_counter()
        feats = backbone(images)
        rate = len(images) / (time.perf_counter() - start)
        if reference is None:
            reference = feats
        cos = np.sum(feats * reference, 1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(reference, axis=1))
        rows.append((f"{runtime} {precision}", rate, float(cos.min())))
    print("| runtime | img/s | vs torch fp32 | min cosine to torch fp32 |")
    print("|---|---:|---:|---:|")
    for label, rate, cos in rows:
        print(f"| {label} | {rate:.1f} | {rate / rows[0][1]:.2f}x | {cos:.7f} |")
    auto = resolve_runtime("auto", cpu, resolve_precision("auto", cpu))
    print(f"`--runtime auto` here: {auto} with precision {resolve_precision('auto', cpu)} (a fixed rule: onnxruntime "
          "for fp32 on a CPU, torch otherwise; openvino only when asked for)")


if __name__ == "__main__":
    main()
