"""Progress bars on stderr (rich): frames done of total, rate and time left, per video and overall.

Shown only when stderr is a terminal and ``--quiet`` was not given, so logs, pipes and CI output stay
clean. The packages report progress through callbacks; drawing it is the command line's job.
"""

from __future__ import annotations

import sys

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

from agecam.realtime.batch import BatchObserver


def progress_wanted(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


class Bars:
    """A set of progress bars, or nothing at all when not ``enabled``.

    Example::

        with Bars(enabled=True) as bars:
            task = bars.add("clip.mp4", total=300, unit="frames")
            bars.update(task, completed=120)
    """

    def __init__(self, enabled: bool):
        self._progress = Progress(
            TextColumn("{task.description}", style="bold"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False, disable=not enabled, refresh_per_second=5)

    def add(self, description: str, total: int | None, unit: str = "frames"):
        return self._progress.add_task(description, total=total or None, unit=unit, rate="")

    def update(self, task, completed: int, total: int | None = None) -> None:
        self._progress.update(task, completed=completed, total=total)
        speed = self._progress.tasks[self._task_index(task)].speed
        if speed:
            self._progress.update(task, rate=f"{speed:.1f}/s")

    def _task_index(self, task) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == task)

    def remove(self, task) -> None:
        self._progress.remove_task(task)

    def __enter__(self) -> "Bars":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()


class BatchBars(BatchObserver):
    """Draws a batch: one bar per video in progress and one for all videos (frames in the headers)."""

    def __init__(self, bars: Bars, jobs):
        self._bars = bars
        self._expected = {job.source: job.frames_expected for job in jobs}
        self._total = sum(self._expected.values())
        self._overall = bars.add(f"all {len(jobs)} videos", self._total)
        self._tasks: dict = {}
        self._done: dict = {}
        self._ended: set = set()

    def _overall_frames(self) -> int:
        return sum(self._done.values())

    def started(self, job, worker: str) -> None:
        self._tasks[job.source] = self._bars.add(job.name, job.frames_expected)

    def advanced(self, job, frames: int) -> None:
        if job.source in self._ended:  # a late report (Ray's queue is not ordered with the results)
            return
        if job.source in self._tasks:
            self._bars.update(self._tasks[job.source], completed=frames)
        self._done[job.source] = frames
        self._bars.update(self._overall, completed=self._overall_frames())

    def ended(self, job, result) -> None:
        self._ended.add(job.source)
        task = self._tasks.pop(job.source, None)
        if task is not None:
            self._bars.remove(task)
        # The total becomes the frames each ended video really had (none for a skipped one), so the
        # overall rate and time left count only work done and to do.
        self._total += result.frames - self._expected[job.source]
        self._expected[job.source] = result.frames
        self._done[job.source] = result.frames
        self._bars.update(self._overall, completed=self._overall_frames(), total=max(self._total, 1))
