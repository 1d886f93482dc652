"""`afgen frames`: the seed's image layout, written with parallel workers and resume.

OUT/rgb/<class>/<clip>/frame_0000.jpg and OUT/flow/<class>/<clip>/flow_0001.jpg (flow k is
named by the frame it leads to), plus OUT/manifest.jsonl with one line per clip. This is an
export for people who want the seed's files; extraction itself never goes through JPEG.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2

from afgen.config import FlowConfig, VideoConfig
from afgen.contracts.manifest import Manifest
from afgen.contracts.store import MANIFEST
from afgen.encoders.flows import iter_flow_images
from afgen.errors import AfgenError
from afgen.extraction.dataset import Clip, Dataset
from afgen.extraction.video import iter_frames
from afgen.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FramesSummary:
    done: int
    skipped: int
    failed: int
    manifest: Path


def _folder_names(dataset: Dataset) -> dict[str, str]:
    """The seed names clip folders by the video's stem; stems that repeat in a class use the id."""
    stems = Counter((c.label, Path(c.source).stem) for c in dataset.clips)
    return {c.id: Path(c.source).stem if stems[(c.label, Path(c.source).stem)] == 1 else c.id
            for c in dataset.clips}


def _write_clip(job: tuple[Clip, str, Path, VideoConfig, FlowConfig, int]) -> dict:
    """Decode one clip and write its JPEGs into temporary folders, renamed when complete."""
    clip, name, out, vcfg, fcfg, quality = job
    cv2.setNumThreads(1)
    start = time.perf_counter()
    rgb_dir, flow_dir = out / "rgb" / clip.label / name, out / "flow" / clip.label / name
    tmp_rgb, tmp_flow = rgb_dir.with_name(f".{name}.tmp"), flow_dir.with_name(f".{name}.tmp")
    record = {"id": clip.id, "label": clip.label, "source": clip.source, "folder": name}
    try:
        for d in (tmp_rgb, tmp_flow, rgb_dir, flow_dir):
            shutil.rmtree(d, ignore_errors=True)
        tmp_rgb.mkdir(parents=True)
        tmp_flow.mkdir(parents=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        count = 0

        def frames():
            nonlocal count
            for frame in iter_frames(clip.path, vcfg):
                bgr = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(tmp_rgb / f"frame_{frame.index:04d}.jpg"), bgr, params)
                count += 1
                yield frame.rgb

        for k, image in enumerate(iter_flow_images(frames(), fcfg), start=1):
            cv2.imwrite(str(tmp_flow / f"flow_{k:04d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
        tmp_rgb.rename(rgb_dir)
        tmp_flow.rename(flow_dir)
        record.update(status="ok", t=count, error=None)
    except AfgenError as exc:
        shutil.rmtree(tmp_rgb, ignore_errors=True)
        shutil.rmtree(tmp_flow, ignore_errors=True)
        record.update(status="failed", t=None, error=str(exc))
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def write_frames(
    dataset: Dataset,
    out: str | Path,
    video: VideoConfig = VideoConfig(),
    flow: FlowConfig = FlowConfig(),
    workers: int = 1,
    quality: int = 95,
    show_progress: bool = True,
) -> FramesSummary:
    """Write the seed's RGB and flow JPEGs for every clip; finished clips are skipped on rerun."""
    out = Path(out)
    manifest = Manifest(out / MANIFEST)
    names = _folder_names(dataset)
    finished = manifest.ids_with_status("ok")
    todo = [c for c in dataset.clips
            if not (c.id in finished and (out / "rgb" / c.label / names[c.id]).is_dir())]
    skipped = len(dataset.clips) - len(todo)
    if skipped:
        log.info("%d clips already done in %s; skipping them", skipped, out)
    jobs = [(c, names[c.id], out, video, flow, quality) for c in todo]
    done = failed = 0
    with progress_bar(len(jobs), "frames", enabled=show_progress) as bar:
        if workers > 1 and len(jobs) > 1:
            with mp.get_context("spawn").Pool(workers) as pool:
                results = pool.imap_unordered(_write_clip, jobs)
                for record in results:
                    done, failed = _log(manifest, record, bar, done, failed)
        else:
            for job in jobs:
                done, failed = _log(manifest, _write_clip(job), bar, done, failed)
    return FramesSummary(done=done, skipped=skipped, failed=failed, manifest=manifest.path)


def _log(manifest: Manifest, record: dict, bar, done: int, failed: int) -> tuple[int, int]:
    manifest.append(record)
    bar.advance()
    if record["status"] == "ok":
        return done + 1, failed
    log.warning("failed: %s", record["error"])
    bar.status(f"{failed + 1} failed")
    return done, failed + 1
