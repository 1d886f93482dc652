"""Progress bars for long work (rich, on stderr so tables on stdout stay clean)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Items per second, e.g. '3.2 clips/s'."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} {self.unit}/s" if speed else f"-- {self.unit}/s", style="cyan")


class Bar:
    """A handle to advance one progress bar and show a short status."""

    def __init__(self, progress: Progress | None, task_id) -> None:
        self._progress, self._task = progress, task_id

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def status(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, status=text)


@contextmanager
def progress_bar(total: int, description: str, unit: str = "clips", enabled: bool = True) -> Iterator[Bar]:
    """A bar with count, rate and ETA; `enabled=False` gives a silent handle."""
    if not enabled:
        yield Bar(None, None)
        return
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        _RateColumn(unit), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield Bar(progress, progress.add_task(description, total=total, status=""))
