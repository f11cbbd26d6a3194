"""Console output: rich progress bars with ETA, and a run log that also lands in log.txt."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def progress_columns() -> tuple[ProgressColumn, ...]:
    """Description, bar, count, elapsed time and ETA: every supernas progress bar."""
    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


@contextmanager
def progress_bar(
    description: str, total: int, enabled: bool = True
) -> Iterator[Callable[..., None]]:
    """Yield `advance(n=1)`; shows a bar with count, elapsed time and ETA when enabled."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    with Progress(*progress_columns(), console=console, transient=False) as prog:
        task = prog.add_task(description, total=total)
        try:
            yield lambda n=1: prog.advance(task, n)
        except BaseException:
            prog.live.transient = True  # a failure ends with its one error line, no half bar
            raise


class RunLog:
    """Timestamped lines appended to `log.txt` (flushed each line) and echoed to the console."""

    def __init__(self, path: Path | None, quiet: bool = False) -> None:
        self.path = path
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(f"{stamp} {message}\n")
        if not self.quiet:
            console.print(message, highlight=False, markup=False)
