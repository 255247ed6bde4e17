"""Many videos in one run: find them, plan their outputs, and process them with worker processes.

A unit of work is one video, since tracks and track ages carry state from frame to frame. Each
worker prepares its pipeline once and takes videos from a queue until none is left. A video's
outputs appear only when it was processed to its end, so an output that exists is complete: a
second run of the same command skips the videos whose outputs are all there.

Long (about 570 lines) because a batch's life is one piece: planning outputs, the workers and their
queue, stop signals reaching them, and outputs kept whole or not at all share their state; Ray's
actors (``ray_batch``) and the progress bars (``BatchObserver``) plug into it.

Example::

    from agecam.realtime.batch import BatchOutputs, find_videos, plan_jobs, run_batch

    jobs = plan_jobs(find_videos(["recordings/"]), BatchOutputs(video_dir=Path("annotated")))
    results = run_batch(jobs, make_cam, BatchConfig(workers=2))
"""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from agecam.core.atomic import atomic_path, make_output_folder, remove_stale_partials, write_text_atomic
from agecam.core.file_names import name_text
from agecam.core.hardware import cpu_cores
from .config import VIDEO_SUFFIXES, BatchConfig

log = logging.getLogger(__name__)

GLOB_CHARACTERS = set("*?[")
PROGRESS_EVERY_S = 0.2  # how often a worker reports its frame count
ALL_PEOPLE = "all-people.csv"  # a batch's combined people table, in the --people-dir folder


class BatchError(Exception):
    """A batch that cannot start: no videos, colliding or unwritable outputs (one line)."""


def is_pattern(text: str) -> bool:
    return bool(GLOB_CHARACTERS & set(text))


def find_videos(arguments: Sequence[str | os.PathLike]) -> list[Path]:
    """The video files named by ``arguments``: files, folders (their video files, by suffix, not
    recursing) and glob patterns (``**`` recurses), in the order given, each once."""
    found: list[Path] = []
    for argument in map(str, arguments):
        path = Path(argument)
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise BatchError(f"no video files in folder {argument} (looked for {', '.join(VIDEO_SUFFIXES)})")
            found.extend(videos)
        elif path.is_file():
            found.append(path)
        elif is_pattern(argument):
            matches = sorted(Path(p) for p in glob.glob(argument, recursive=True) if Path(p).is_file())
            if not matches:
                raise BatchError(f"no file matches {argument}")
            found.extend(matches)
        else:
            raise BatchError(f"no such file, folder or pattern: {argument}")
    return first_of_each(found)


def first_of_each(paths: Sequence[Path]) -> list[Path]:
    """``paths`` in order, each file once (two names of one file: the first kept)."""
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


@dataclass(frozen=True)
class BatchOutputs:
    """Where a batch writes: ``video_dir/NAME.mp4``, ``csv_dir/NAME.csv``, one JSON Lines file for
    all videos (built from per-video parts kept beside it, in ``.NAME.parts/``, so a re-run can skip
    finished videos), ``people_dir/NAME.csv`` (each video's people, ``realtime.people``) with
    ``people_dir/all-people.csv`` joining them, and ``report_dir/NAME.html`` (each video's report page,
    ``realtime.run_report``). Any of them may be None."""

    video_dir: Path | None = None
    csv_dir: Path | None = None
    jsonl: Path | None = None
    people_dir: Path | None = None
    report_dir: Path | None = None
    video_suffix: str = ".mp4"

    @property
    def all_people(self) -> Path | None:
        return None if self.people_dir is None else self.people_dir / ALL_PEOPLE

    @property
    def jsonl_parts(self) -> Path | None:
        return None if self.jsonl is None else self.jsonl.parent / f".{self.jsonl.name}.parts"

    def folders(self) -> list[Path]:
        return [p for p in (self.video_dir, self.csv_dir, self.jsonl_parts, self.people_dir, self.report_dir) if p is not None]


@dataclass(frozen=True)
class VideoJob:
    """One video and the outputs it gets."""

    source: Path
    name: str  # the outputs' file stem: the video's own
    output: Path | None = None
    csv: Path | None = None
    jsonl: Path | None = None  # this video's part of the batch's JSON Lines
    people: Path | None = None  # this video's people table
    report: Path | None = None  # this video's report page
    frames_expected: int = 0  # from the container's header (an estimate; 0 when unknown)

    def outputs(self) -> list[Path]:
        return [p for p in (self.output, self.csv, self.jsonl, self.people, self.report) if p is not None]

    def finished(self) -> bool:
        """All outputs present (outputs only ever appear complete), and there is at least one."""
        outputs = self.outputs()
        return bool(outputs) and all(p.is_file() for p in outputs)


def plan_jobs(videos: Sequence[Path], outputs: BatchOutputs) -> list[VideoJob]:
    """One job per video, its outputs named after it; refuses names that collide, outputs that would
    replace an input, and output folders that cannot be made or written."""
    if not videos:
        raise BatchError("no videos to process")
    by_name: dict[str, list[Path]] = defaultdict(list)
    for video in videos:
        by_name[video.stem].append(video)
    if outputs.folders():
        for name, sources in by_name.items():
            if len(sources) > 1:
                raise BatchError(f"{' and '.join(map(str, sources[:2]))} would both be written as {name}.*; "
                                 f"rename one or process them in separate runs")
        if outputs.people_dir is not None and Path(ALL_PEOPLE).stem in by_name:
            raise BatchError(f"a video named {Path(ALL_PEOPLE).stem} would clash with the combined people table "
                             f"{outputs.all_people}; rename it or process it on its own")
    for folder in outputs.folders():
        _writable_folder(folder)
    if outputs.jsonl is not None and outputs.jsonl.is_dir():
        raise BatchError(f"--jsonl names a folder: {outputs.jsonl}; give a file name such as faces.jsonl")
    inputs = {v.resolve() for v in videos}
    jobs = []
    for video in videos:
        job = VideoJob(
            source=video, name=video.stem,
            output=outputs.video_dir / f"{video.stem}{outputs.video_suffix}" if outputs.video_dir else None,
            csv=outputs.csv_dir / f"{video.stem}.csv" if outputs.csv_dir else None,
            jsonl=outputs.jsonl_parts / f"{video.stem}.jsonl" if outputs.jsonl_parts else None,
            people=outputs.people_dir / f"{video.stem}.csv" if outputs.people_dir else None,
            report=outputs.report_dir / f"{video.stem}.html" if outputs.report_dir else None,
            frames_expected=_frames_in_header(video))
        for out in job.outputs():
            if out.resolve() in inputs:
                raise BatchError(f"output {out} would replace an input video; choose another output folder")
        jobs.append(job)
    return jobs


def _writable_folder(folder: Path) -> None:
    try:
        make_output_folder(folder)
    except OSError as error:
        raise BatchError(str(error)) from None


def _frames_in_header(path: Path) -> int:
    """The frame count a container states (0 when unknown or unreadable: the worker finds out)."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            return int(streams[0].frames or 0) if streams else 0
    except (av.FFmpegError, OSError, ValueError):
        return 0


@dataclass
class FileResult:
    """How one video went: ``status`` is done, skipped, failed or interrupted."""

    source: str
    name: str
    status: str
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    seconds: float = 0.0
    error: str | None = None
    reconnects: int = 0
    worker: str = ""

    @classmethod
    def of(cls, job: "VideoJob", status: str, **fields) -> "FileResult":
        return cls(str(job.source), job.name, status, **fields)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict:
        return {**asdict(self), "source": name_text(self.source), "name": name_text(self.name),
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 2)}


@dataclass(frozen=True)
class WorkSettings:
    """What each video gets besides its paths (the same for every video of a batch)."""

    max_frames: int | None = None
    log_level: int = logging.WARNING  # a worker process logs at the parent's level
    threads: int = 0  # CPU threads per pipeline (0: every core); a worker's share when several share a machine
    report_faces: bool = False  # reports show each person's clearest view


def ended_without_processing(job: VideoJob, status: str, error: str, observer: "BatchObserver") -> FileResult:
    """The result of a video that was not (or not wholly) processed, told to ``observer`` too."""
    result = FileResult.of(job, status, error=error)
    observer.ended(job, result)
    return result


def throttled(report: Callable[[int], None], every_s: float = PROGRESS_EVERY_S) -> Callable[[int], None]:
    """``report(frames)`` at most every ``every_s`` seconds (a worker's progress crosses a process)."""
    last = [float("-inf")]

    def progress(frames: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            report(frames)

    return progress


class BatchObserver:
    """Told how the batch goes (the CLI draws progress bars from it); every method may be left as is."""

    def started(self, job: VideoJob, worker: str) -> None:
        """``job`` began on ``worker``."""

    def advanced(self, job: VideoJob, frames: int) -> None:
        """``job`` has ``frames`` frames done."""

    def ended(self, job: VideoJob, result: FileResult) -> None:
        """``job`` ended (done, skipped, failed or interrupted)."""


def process_video(cam, job: VideoJob, settings: WorkSettings, progress=None, stop=None,
                  handle_signals: bool = False, worker: str = "") -> FileResult:
    """Run the prepared pipeline ``cam`` over one video; any failure is reported in the result."""
    from .runner import RunConfig, run
    from .sources import SourceError, VideoSource

    started = time.perf_counter()
    config = RunConfig(show_window=False, output=job.output, csv=job.csv, jsonl=job.jsonl, people=job.people,
                       report=job.report, report_faces=settings.report_faces, video_name=str(job.source),
                       max_frames=settings.max_frames, keep_partial=False, handle_signals=handle_signals)
    try:
        with VideoSource(str(job.source)) as source:
            summary = run(cam, source, config, progress=progress, stop=stop)
    except (SourceError, OSError, ValueError) as error:
        return FileResult.of(job, "failed", error=str(error) or type(error).__name__,
                             seconds=time.perf_counter() - started, worker=worker)
    status = "done" if summary.complete else "interrupted" if summary.interrupted else "failed"
    error = summary.failure if status == "failed" else None
    if status == "done" and summary.frames == 0:
        status, error = "failed", "no frame could be read"
    return FileResult.of(job, status, frames=summary.frames, faces=summary.faces, tracks=len(summary.tracks),
                         seconds=summary.seconds, error=error, reconnects=summary.reconnects, worker=worker)


def skip_finished(jobs: Sequence[VideoJob], overwrite: bool) -> tuple[list[VideoJob], list[FileResult]]:
    """The jobs still to do, and a ``skipped`` result for each whose outputs are all present."""
    todo, skipped = [], []
    for job in jobs:
        if not overwrite and job.finished():
            skipped.append(FileResult.of(job, "skipped", error="outputs already complete"))
        else:
            todo.append(job)
    return todo, skipped


def run_batch(jobs: Sequence[VideoJob], make_cam: Callable, config: BatchConfig = BatchConfig(),
              settings: WorkSettings = WorkSettings(), observer: BatchObserver | None = None) -> list[FileResult]:
    """Process ``jobs`` on this machine: in this process with one worker, else in worker processes.

    ``make_cam(threads)`` prepares one pipeline using that many CPU threads, 0 for all (it must pickle:
    each worker process calls it once). Several workers split the cores between them: measured on
    2 cores with 2 workers, one thread each got 39.8 frames/s through a batch where the libraries'
    defaults (every core for each) got 35.1. Returns one result per job, in the jobs' order. Ctrl-C, SIGTERM or SIGHUP stop every worker
    after its frame in hand; the videos in progress then keep no output, and their results say
    ``interrupted``. A second signal stops at once.
    """
    def run_todo(todo, observer):
        workers = config.worker_count(len(todo))
        if workers == 1:
            return _run_here(todo, make_cam, settings, observer)
        shared = replace(settings, threads=max(1, cpu_cores() // workers))
        return _run_in_processes(todo, make_cam, workers, shared, observer)

    return run_unfinished(jobs, config.overwrite, observer or BatchObserver(), run_todo)


def run_unfinished(jobs: Sequence[VideoJob], overwrite: bool, observer: BatchObserver, run_todo) -> list[FileResult]:
    """What every engine (worker processes, Ray) does around its own work: skip the finished videos,
    hand the rest to ``run_todo(todo, observer)`` (which yields their results), remove the temporary
    files killed workers left, and return one result per job in the jobs' order."""
    todo, skipped = skip_finished(jobs, overwrite)
    results = {r.source: r for r in skipped}
    for job in jobs:
        if str(job.source) in results:
            observer.ended(job, results[str(job.source)])
    if todo:
        try:
            for result in run_todo(todo, observer):
                results[result.source] = result
        finally:
            for job in jobs:
                for out in job.outputs():
                    remove_stale_partials(out)
    return [results[str(job.source)] for job in jobs]


def _run_here(jobs, make_cam, settings, observer):
    from .runner import StopRequests

    with make_cam(settings.threads) as cam, StopRequests() as stops:
        for job in jobs:
            if stops.requested:
                yield ended_without_processing(job, "interrupted", "not started", observer)
                continue
            observer.started(job, "main")
            result = process_video(cam, job, settings, progress=lambda n, job=job: observer.advanced(job, n),
                                   stop=lambda: stops.requested is not None, worker="main")
            observer.ended(job, result)
            yield result


def _worker_main(make_cam, settings: WorkSettings, jobs, events, stop, worker: str, parent: int) -> None:
    """A worker process: prepare the pipeline once, then process videos from ``jobs`` until None.
    ``parent``: the pid of the process that started it (it may have died before this line runs)."""
    # The parent decides when to stop (it tells us through ``stop``), so a terminal's Ctrl-C, sent to
    # the whole process group, must not end this process mid-frame.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # First: a parent killed while this worker starts or loads must not leave it working alone.
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above took effect
        return
    logging.basicConfig(level=settings.log_level, format=f"%(levelname)s {worker} %(name)s: %(message)s")
    try:
        cam = make_cam(settings.threads)
    except Exception as error:  # reported by the parent for every video left
        events.put(("broken", worker, f"{type(error).__name__}: {error}"))
        return

    def stopping() -> bool:  # asked to, or orphaned (the parent was killed): outputs nobody waits for
        return stop.is_set() or os.getppid() != parent

    with cam:
        while (item := _next_job(jobs, stopping)) is not None:
            index, job = item
            events.put(("started", worker, index))
            progress = throttled(lambda frames, index=index: events.put(("advanced", worker, index, frames)))
            result = process_video(cam, job, settings, progress=progress, stop=stopping, worker=worker)
            events.put(("ended", worker, index, result))
    events.put(("exited", worker))


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), even
    in the middle of loading the libraries; elsewhere the parent-pid checks between frames remain."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("prctl(PR_SET_PDEATHSIG) is not available; relying on the parent-pid checks")


def _next_job(jobs, stopping):
    """The next ``(index, job)`` from the queue, or None at its end or when stopping."""
    while not stopping():
        try:
            return jobs.get(timeout=0.5)
        except queue.Empty:
            continue
    return None


@dataclass
class _Worker:
    process: multiprocessing.Process
    job: int | None = None
    exited: bool = False
    broken: str | None = None


@dataclass
class _Pool:
    """The parent's view of its worker processes."""

    context: object
    make_cam: Callable
    settings: WorkSettings
    jobs: object = field(init=False)  # (index, job) for the workers, then one None each
    events: object = field(init=False)  # what the workers report
    stop: object = field(init=False)  # set: every worker stops after its frame in hand
    workers: dict[str, _Worker] = field(default_factory=dict)

    def __post_init__(self):
        self.jobs, self.events, self.stop = self.context.Queue(), self.context.Queue(), self.context.Event()

    def start_worker(self) -> None:
        name = f"worker-{len(self.workers) + 1}"
        process = self.context.Process(target=_worker_main, name=f"agecam-{name}", daemon=True,
                                       args=(self.make_cam, self.settings, self.jobs, self.events, self.stop, name,
                                             os.getpid()))
        process.start()
        self.workers[name] = _Worker(process)

    def live(self) -> list[str]:
        return [n for n, w in self.workers.items() if not w.exited and w.broken is None]

    def finish(self, wait_s: float = 10.0) -> None:
        """Let the workers exit (each has its end-of-queue marker, or the stop flag); end those that do not."""
        deadline = time.monotonic() + wait_s
        for worker in self.workers.values():
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        self.terminate()

    def terminate(self) -> None:
        for worker in self.workers.values():
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers.values():
            worker.process.join(timeout=5)


def _run_in_processes(jobs, make_cam, workers, settings, observer):
    from .runner import StopRequests

    # Spawned, not forked: the parent may hold threads (TensorFlow, MediaPipe) that fork would copy half-way.
    pool = _Pool(multiprocessing.get_context("spawn"), make_cam, settings)
    pending = dict(enumerate(jobs))
    for item in pending.items():
        pool.jobs.put(item)
    for _ in range(workers):
        pool.jobs.put(None)
        pool.start_worker()
    try:
        with StopRequests() as stops:
            while pending:
                if stops.requested and not pool.stop.is_set():
                    pool.stop.set()  # workers stop after the frame in hand and take no new video
                try:
                    event = pool.events.get(timeout=0.2)
                except queue.Empty:
                    yield from _check_workers(pool, pending, jobs, observer)
                    if not pool.live():
                        break
                    continue
                kind, name = event[0], event[1]
                worker = pool.workers[name]
                if kind == "started":
                    worker.job = event[2]
                    if pool.stop.is_set():
                        continue
                    observer.started(jobs[event[2]], name)
                elif kind == "advanced":
                    observer.advanced(jobs[event[2]], event[3])
                elif kind == "ended":
                    worker.job = None
                    index, result = event[2], event[3]
                    pending.pop(index, None)
                    observer.ended(jobs[index], result)
                    yield result
                elif kind == "broken":
                    worker.broken = event[2]
                elif kind == "exited":
                    worker.exited = True
    except KeyboardInterrupt:  # a second signal: stop at once
        pool.terminate()
        for index in list(pending):
            yield ended_without_processing(jobs[index], "interrupted", "stopped at once", observer)
            pending.pop(index)
        return
    reason = _why_unfinished(pool)
    for index in sorted(pending):
        if pool.stop.is_set():
            yield ended_without_processing(jobs[index], "interrupted", "not started", observer)
        else:
            yield ended_without_processing(jobs[index], "failed", reason, observer)
    pool.finish()


def _check_workers(pool: _Pool, pending: dict, jobs, observer):
    """A video whose worker process died (a crash in native code) fails, and a new worker takes the
    rest; a worker that died before taking a video counts as broken (no restart loop)."""
    for name, worker in list(pool.workers.items()):
        if worker.exited or worker.broken or worker.process.is_alive():
            continue
        code = worker.process.exitcode
        if worker.job is None or worker.job not in pending:
            worker.broken = f"the worker process exited (code {code}) before taking a video"
            continue
        worker.exited = True
        job = jobs[worker.job]
        pending.pop(worker.job)
        result = FileResult.of(job, "failed", worker=name, error=f"the worker process died (exit code {code}) on this video")
        observer.ended(job, result)
        yield result
        if pending and not pool.stop.is_set():
            pool.start_worker()  # takes the end-of-queue marker the dead worker left unread


def _why_unfinished(pool: _Pool) -> str:
    broken = [w.broken for w in pool.workers.values() if w.broken]
    return f"no worker could start: {broken[0]}" if broken else "no worker was left to process it"


def write_combined_jsonl(jobs: Sequence[VideoJob], results: Sequence[FileResult], path: Path) -> int:
    """Join the per-video JSON Lines of the finished videos into ``path`` (in the jobs' order), in one
    step; returns the number of videos in it."""
    finished = {r.source for r in results if r.status in ("done", "skipped")}
    parts = [job.jsonl for job in jobs if job.jsonl is not None and str(job.source) in finished and job.jsonl.is_file()]
    if not parts:  # no video finished: no file (an empty one would look like videos without faces)
        return 0
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out)
    return len(parts)


def write_combined_people(jobs: Sequence[VideoJob], results: Sequence[FileResult], path: Path) -> int:
    """Join the people tables of the finished videos into ``path`` (in the jobs' order, each row led by
    its video), in one step; returns the number of videos in it."""
    from .people import combined_people_text, read_people_csv

    finished = {r.source for r in results if r.status in ("done", "skipped")}
    parts = [(name_text(job.source), read_people_csv(job.people)) for job in jobs
             if job.people is not None and str(job.source) in finished and job.people.is_file()]
    if parts:
        write_text_atomic(path, combined_people_text(parts, as_json=False))
    return len(parts)


def totals(results: Sequence[FileResult], seconds: float) -> dict:
    """The batch's sums: files per status, frames, faces, and frames per second of wall time."""
    counts = defaultdict(int)
    for result in results:
        counts[result.status] += 1
    frames = sum(r.frames for r in results if r.status == "done")
    return {"files": len(results), **{s: counts[s] for s in ("done", "skipped", "failed", "interrupted")},
            "frames": frames, "faces": sum(r.faces for r in results if r.status == "done"),
            "seconds": round(seconds, 3), "fps": round(frames / seconds, 2) if seconds > 0 else 0.0}
