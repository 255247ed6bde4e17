"""One stream through a pipeline: the loop the window, headless runs and the live web page share.

A :class:`StreamSession` is given a stream's frames one by one, either pushed (a camera callback:
:meth:`StreamSession.push`) or as :meth:`AgeCam.stream` yields them (the runner reads ahead:
:meth:`StreamSession.record`). For each frame it gives the faces and the annotated picture; it keeps
the people seen (``core.people.TrackLog``) and the processing rate, each measured here once, and
gives the people at the end, computed once however often they are asked for.
"""

from __future__ import annotations

import time

import numpy as np

from .detections import Detections
from .people import TrackLog

# The processing rate drawn on frames: each frame's rate weighs this much into the running one.
RATE_WEIGHT = 0.1
# Stages of a frame's own processing (AgeCam's stage timer); reading and writing are the source's and
# the sinks'.
PROCESSING_STAGES = ("detect", "track", "crop", "infer", "smooth")


class StreamSession:
    """The faces, pictures, people and rate of one stream through ``cam`` (``core.analyzer.AgeCam``).

    Example::

        session = StreamSession(cam, fps=30)
        for image in frames:
            annotated, faces = session.push(image)
        people = session.people()
    """

    def __init__(self, cam, fps: float = 30.0, keep_faces: bool = False):
        self.cam = cam
        self.fps = fps if fps > 0 else 30.0
        self.log = TrackLog(1 / self.fps, keep_faces=keep_faces, blur_faces=cam.annotator.config.blur_faces)
        self.rate: float | None = None  # frames processed per second of processing, smoothed
        self.frames = 0
        self._people: tuple[tuple, list[dict]] | None = None  # (frames, gate) it was computed for, rows
        self._started: float | None = None

    def start(self) -> "StreamSession":
        """A new stream for the pipeline (no tracks yet; time limits at the stream's frame rate), for
        :meth:`push`; :meth:`AgeCam.stream` starts one itself."""
        self.cam.reset(self.fps)
        return self

    def push(self, image: np.ndarray, time_s: float | None = None) -> tuple[np.ndarray, Detections]:
        """Process the next frame of the stream: its annotated copy and its faces. ``time_s``: when it
        was shown, in seconds into the stream (default: the clock since the first frame)."""
        started = time.perf_counter()
        self._started = started if self._started is None else self._started
        faces = self.cam.get(image)
        annotated = self.record(image, faces, started - self._started if time_s is None else time_s,
                                time.perf_counter() - started)
        return annotated, faces

    def record(self, image: np.ndarray, faces: Detections, time_s: float, seconds: float | None = None,
               draw: bool = True) -> np.ndarray | None:
        """Log a processed frame's faces at ``time_s`` and count ``seconds`` of processing (default:
        its stage timer's); its annotated copy (drawn with the rate so far) when ``draw``."""
        if seconds is None:
            seconds = sum(self.cam.timer.frame.get(stage, 0.0) for stage in PROCESSING_STAGES)
        drawn = time.perf_counter()
        annotated = self.cam.annotate(image, faces, self.rate) if draw else None
        seconds += time.perf_counter() - drawn
        frame_rate = 1 / max(seconds, 1e-6)
        self.rate = frame_rate if self.rate is None else (1 - RATE_WEIGHT) * self.rate + RATE_WEIGHT * frame_rate
        self.log.add(faces, time_s, image)
        self.frames += 1
        return annotated

    def people(self) -> list[dict]:
        """One row per person (track) seen so far (``core.people``): age, range, verdict; computed once
        per frame (and age gate) however often it is asked for (the people table, the report, the summary)."""
        key = (self.frames, self.cam.gate)
        if self._people is None or self._people[0] != key:
            self._people = (key, self.log.people(self.cam.age_range, self.cam.gate))
        return self._people[1]
