"""The one loop that consumes an engine's events: extract, batch predict and single-clip predict.

Each event is handed to the caller's `commit` inside `critical()`, so a stop signal (SIGTERM,
SIGINT) lets the clip's files or row finish and then stops; the clip is counted done or failed
and the progress bar advances. A failed clip is committed like any other (the caller records
it) and the loop goes on. A stop notes on the exception how far the work got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from afgen.extraction.dataset import Clip
from afgen.extraction.engines import Event
from afgen.lifecycle import critical, stopped_after
from afgen.progress import progress_bar


@dataclass
class Tally:
    """Clips committed so far: done and failed."""

    done: int = 0
    failed: int = 0


def drive(events: Iterable[Event], todo: Sequence[Clip], commit: Callable[[Clip, Any], None], *,
          label: str, show_progress: bool = True, before: int = 0, of: int | None = None,
          prepare: Callable[[Clip, Event], Any] | None = None, failed_word: str = "failed") -> Tally:
    """Consume `events` (one per clip of `todo`): `prepare(clip, event)` first, outside the
    critical section (e.g. scoring; the event itself without it), then `commit(clip, prepared)`
    inside it. `before` clips were done by an earlier run, of `of` in all (for the line a stop
    prints); the bar counts `todo` and shows how many failed (`failed_word`)."""
    by_id = {c.id: c for c in todo}
    tally = Tally()
    total = len(todo) + before if of is None else of
    with progress_bar(len(todo), label, enabled=show_progress) as bar, stopped_after(
            lambda: f"{before + tally.done + tally.failed} of {total} clips"):
        for event in events:
            clip = by_id[event[1]]
            item = prepare(clip, event) if prepare is not None else event
            with critical():  # a stop signal waits for the clip's files (or row) and its count
                commit(clip, item)
                if event[0] == "done":
                    tally.done += 1
                else:
                    tally.failed += 1
            if tally.failed:
                bar.status(f"[red]{tally.failed} {failed_word}")
            bar.advance()
    return tally
