"""Progress for long work: a rich bar (count, rate, ETA) on a terminal, quiet otherwise."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressReporter:
    """Count items done; ``enabled=False`` (library use, tests) makes it a no-op."""

    def __init__(self, label: str, total: int | None, *, enabled: bool = True,
                 console: Console | None = None) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self.label = label
        self.total = total
        self.console = console or Console(stderr=True)

    def __enter__(self) -> ProgressReporter:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, rate="")
        return self

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)
            task = self._progress.tasks[0]
            speed = task.finished_speed or task.speed
            if speed:
                self._progress.update(self._task, rate=f"{speed:,.1f}/s")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
