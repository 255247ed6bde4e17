"""``agecam benchmark --batch``: how many frames per second a batch of videos gets through, with 1, 2, ...
worker processes and with Ray on this machine.

The clips are generated (held-out faces when the caller gives them), written to a temporary folder and
processed exactly as ``agecam video CLIPS/ -o OUT/ --csv-dir OUT/ --workers N`` does, annotated videos
included. The wall time counts everything the user waits for: the workers' start-up (each loads the
detector and the age model) as well as the frames.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..batch import BatchOutputs, FileResult, plan_jobs, run_batch
from .benchmark import FaceSource, benchmark_faces
from agecam.core.hardware import cpu_cores, machine
from ..config import BatchConfig
from ..synthetic import SceneConfig, write_scene

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchBenchmarkConfig:
    """The clips (count, length, size, faces each) and the ways to run them."""

    clips: int = 6
    frames: int = 150
    width: int = 640
    height: int = 480
    faces: int = 3
    workers: tuple[int, ...] = (1, 2)
    ray: bool = True  # also on a local Ray instance, with the largest worker count
    faces_for: FaceSource | None = None


def run_batch_benchmark(config: BatchBenchmarkConfig, make_cam: Callable) -> dict:
    """Time the same batch once per worker count (and on Ray); returns the JSON docs/usage.md reads."""
    with make_cam() as cam:  # what the workers will run, for the record
        model, runtime = cam.model.name, cam.model.runtime
    rows = []
    with tempfile.TemporaryDirectory(prefix="agecam-batch-") as folder:
        clips, origin = _write_clips(Path(folder) / "clips", config)
        for workers in config.workers:
            rows.append(_timed("processes", workers, clips, Path(folder) / f"out-{workers}", make_cam))
        if config.ray:
            from ..ray_batch import RayConfig, run_on_ray

            workers = max(config.workers)

            def on_ray(jobs, make):
                return run_on_ray(jobs, make, RayConfig(batch=BatchConfig(workers=workers, overwrite=True)))

            rows.append(_timed("ray (local)", workers, clips, Path(folder) / "out-ray", make_cam, on_ray))
    return {"clips": config.clips, "frames_per_clip": config.frames, "size": f"{config.width}x{config.height}",
            "faces_per_clip": config.faces, "faces_origin": origin, "cpu_cores": cpu_cores(), "machine": machine(),
            "model": model, "runtime": runtime, "rows": rows}


def _write_clips(folder: Path, config: BatchBenchmarkConfig) -> tuple[list[Path], str]:
    """The generated clips, and where their faces came from (``benchmark_faces``)."""
    folder.mkdir()
    faces, origin = benchmark_faces(config.faces, config.faces_for)
    return [write_scene(folder / f"clip{i:02d}.mp4", faces, SceneConfig(width=config.width, height=config.height,
                                                                       frames=config.frames, seed=i))
            for i in range(config.clips)], origin


def _timed(engine: str, workers: int, clips: list[Path], out: Path, make_cam, runner=None) -> dict:
    jobs = plan_jobs(clips, BatchOutputs(video_dir=out, csv_dir=out))
    started = time.perf_counter()
    if runner is None:
        results = run_batch(jobs, make_cam, BatchConfig(workers=workers, overwrite=True))
    else:
        results = runner(jobs, make_cam)
    wall = time.perf_counter() - started
    return _row(engine, workers, results, wall)


def _row(engine: str, workers: int, results: list[FileResult], wall: float) -> dict:
    failed = [f"{r.name}: {r.error}" for r in results if r.status != "done"]
    if failed:
        raise RuntimeError(f"the {engine} batch with {workers} workers did not finish: {failed[0]}")
    frames = sum(r.frames for r in results)
    per_video = [r.fps for r in results]
    log.info("%s, %d workers: %d frames in %.1f s", engine, workers, frames, wall)
    return {"engine": engine, "workers": workers, "frames": frames, "wall_s": round(wall, 2),
            "fps": round(frames / wall, 2), "per_video_fps_median": round(statistics.median(per_video), 2)}
