"""`afgen predict INPUT --out predictions.csv`: score a folder, CSV or list of clips in one run.

The clips go through the extraction engines (local producer processes, Ray, `--shard I/N`)
with the backbone built once; each finished clip is scored at once and its row appended to the
output (CSV or JSON lines), so a killed run keeps every finished row and a rerun scores only
the clips the output does not hold yet. A clip that cannot be read gets a row with its status
and reason; it never stops the batch. The output has one writer per shard (extraction.lock's
FileLock, taken before torch loads, so a second writer is refused at once); shards of one
partition append to one file side by side, a row at a time.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from afgen.config import ExtractConfig, PredictConfig
from afgen.errors import AfgenError
from afgen.extraction.dataset import Clip, discover
from afgen.extraction.engines import Event
from afgen.extraction.engines.driver import Tally, drive
from afgen.extraction.engines.interface import run_with
from afgen.extraction.lock import ALL, FileLock, shard_scope
from afgen.extraction.shards import shard_of

if TYPE_CHECKING:
    from afgen.learning.predict import Prediction

log = logging.getLogger(__name__)


@dataclass
class BatchSummary:
    out: Path
    scored: int  # rows written by this run
    failed: int
    skipped: int  # already in the output from an earlier run
    seconds: float
    #: top-1 / top-k accuracy over every scored row of the output with a known label, if any.
    accuracy: dict | None = None


class PredictionsFile:
    """The output: CSV (one column per rank) or JSON lines (`.jsonl`), appended one row per clip."""

    def __init__(self, path: Path, top: int) -> None:
        self.path, self.top = Path(path), top
        self.jsonl = self.path.suffix.lower() in (".jsonl", ".json")
        self.columns = ["path", "id", "label", "status", "audio"]
        for k in range(1, top + 1):
            self.columns += [f"pred_{k}", f"prob_{k}"]
        self.columns.append("error")

    def rows(self) -> list[dict]:
        """The rows already written (a line torn by a kill is dropped, and the file trimmed to match)."""
        if not self.path.is_file():
            return []
        with self.path.open(encoding="utf-8", newline="") as fh:
            text = fh.read()
        if text and not text.endswith("\n"):  # the last row was cut short: it is redone
            with self.path.open("r+", encoding="utf-8", newline="") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # not while another shard writes a row
                text = fh.read()
                if text and not text.endswith("\n"):
                    text = text[: text.rfind("\n") + 1]
                    fh.truncate(len(text.encode("utf-8")))
        if self.jsonl:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        rows = list(csv.DictReader(text.splitlines()))
        if rows and list(rows[0]) != self.columns:
            raise AfgenError(f"this CSV has other columns ({', '.join(rows[0])}); write to another --out, or rerun "
                             "with the --top it was written with", self.path)
        return rows

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # one row at a time, one header, across shards
            new = fh.seek(0, 2) == 0
            if self.jsonl:
                fh.write(json.dumps(row) + "\n")
            else:
                writer = csv.writer(fh)
                if new:
                    writer.writerow(self.columns)
                flat = [row["path"], row["id"], row["label"] or "", row["status"], row["audio"] or ""]
                for k in range(self.top):
                    pair = row["top"][k] if k < len(row["top"]) else ("", "")
                    flat += [pair[0], f"{pair[1]:.6f}" if pair[1] != "" else ""]
                writer.writerow(flat + [row["error"] or ""])

    def predictions(self, row: dict) -> list[str]:
        """The ranked class names of a row read back from the file."""
        if self.jsonl:
            return [name for name, _ in row.get("top") or []]
        return [row[f"pred_{k}"] for k in range(1, self.top + 1) if row.get(f"pred_{k}")]


def _row(clip: Clip, status: str, prediction: Prediction | None = None, error: str | None = None) -> dict:
    return {"path": str(clip.path), "id": clip.id, "label": clip.label, "status": status,
            "audio": prediction.audio if prediction else None,
            "top": [[name, round(p, 6)] for name, p in prediction.top] if prediction else [], "error": error}


def accuracy(output: PredictionsFile, classes: list[str]) -> dict | None:
    """Top-1 and top-k accuracy over the scored rows whose label is one of the run's classes,
    each clip counted once (its first row) however many times it is in the file."""
    first: dict[str, dict] = {}
    for r in output.rows():
        if r.get("status") == "ok" and r.get("label") in classes:
            first.setdefault(r["id"], r)
    if not first:
        return None
    ranked = [(r["label"], output.predictions(r)) for r in first.values()]
    return {"n": len(ranked), "top1": sum(p[:1] == [y] for y, p in ranked) / len(ranked),
            "topk": sum(y in p for y, p in ranked) / len(ranked), "k": output.top}


def predict_many(source: str | Path, out: str | Path, run: str | Path | None = None, onnx: str | Path | None = None,
                 top: int = PredictConfig.top, drop_audio: bool = False, weights: str | None = None,
                 cfg: ExtractConfig = ExtractConfig(), shard: tuple[int, int] | None = None,
                 show_progress: bool = True) -> BatchSummary:
    """Score every clip of `source` (a folder, with or without class folders; a CSV; a list of
    paths) into `out`, one row per clip; clips already in `out` are skipped. Another run
    writing the same shard (or all) of `out` is refused, naming it, before anything loads."""
    start = time.perf_counter()
    scope = ALL if shard is None else shard_scope(*shard)
    with FileLock(Path(out), scope, command=" ".join(sys.argv)):
        return _predict_many(source, Path(out), run, onnx, top, drop_audio, weights, cfg, shard, show_progress, start)


def _predict_many(source: str | Path, out: Path, run: str | Path | None, onnx: str | Path | None, top: int,
                  drop_audio: bool, weights: str | None, cfg: ExtractConfig, shard: tuple[int, int] | None,
                  show_progress: bool, start: float) -> BatchSummary:
    from afgen.learning.predict import Scorer, extraction_for  # torch: only once the output is ours

    scorer = Scorer(run, onnx)
    dataset = discover(source)
    output = PredictionsFile(Path(out), top)
    done = {r["id"] for r in output.rows()}
    clips = [c for c in dataset.clips if shard is None or shard_of(c.id, shard[1]) == shard[0]]
    todo = [c for c in clips if c.id not in done]
    skipped = len(clips) - len(todo)
    if skipped:
        log.info("%d of %d clips are already in %s; scoring the other %d", skipped, len(clips), output.path, len(todo))
    tally = Tally()
    if todo:
        events = run_with(todo, cfg, *extraction_for(scorer.store_config, weights, cfg.device,
                                                     config=scorer.config_source))

        def scored(clip: Clip, event: Event) -> dict:
            if event[0] == "done":
                return _row(clip, "ok", scorer.score(event[2], top, drop_audio, clip.path))
            return _row(clip, "failed", error=event[3])

        tally = drive(events, todo, lambda clip, row: output.append(row), label="predict",
                      show_progress=show_progress, before=skipped, of=len(clips), prepare=scored,
                      failed_word="unreadable")
    return BatchSummary(out=output.path, scored=tally.done, failed=tally.failed, skipped=skipped,
                        seconds=time.perf_counter() - start, accuracy=accuracy(output, scorer.classes))
