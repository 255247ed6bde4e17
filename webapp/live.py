"""Per-session state of the live page: the pipeline the WebRTC frame callback runs.

streamlit-webrtc calls the frame callback on its own thread, so the session's pipeline and
its counters sit behind one lock; the page reads them with :meth:`LiveSession.snapshot`.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import replace

import numpy as np

from agecam.core.age_model import AgeModel
from agecam.core.analyzer import AgeCam, AgeCamConfig
from agecam.core.annotator import AnnotatorConfig
from agecam.core.config import AgeGateConfig
from agecam.core.detector import DetectorConfig
from agecam.core.people import TrackLog


class LiveSession:
    """Annotate a browser's camera frames with the shared model and this session's tracker.

    Example::

        session = LiveSession(AgeModel.load("cnn"), confidence=0.5, show_fps=True)
        annotated = session.annotate(frame_bgr)
    """

    def __init__(self, model: AgeModel, confidence: float = 0.5, show_fps: bool = True, show_range: bool = False,
                 gate: int | None = None, blur_faces: bool = False):
        config = AgeCamConfig(detector=DetectorConfig(min_confidence=confidence),
                              annotator=AnnotatorConfig(show_fps=show_fps, show_range=show_range,
                                                        blur_faces=blur_faces),
                              gate=AgeGateConfig(gate))
        self._cam = AgeCam(config, model=model)  # ModelError: an age gate the model has no bounds for
        # Each AgeCam holds a MediaPipe graph (threads and ~20 MB): release it when the session is
        # closed, or at the latest when Streamlit drops the session's state.
        self._release = weakref.finalize(self, self._cam.close)
        self._lock = threading.Lock()
        self._frames = 0
        self._ages: dict[int, float] = {}
        self._fps: float | None = None
        self._last: float | None = None
        self._log = TrackLog()  # everyone seen since the stream started
        self._started: float | None = None
        self._in_view: set[int] = set()

    def annotate(self, image_bgr: np.ndarray) -> np.ndarray:
        with self._lock:  # tracking is stateful: one frame at a time, in order
            if not self._release.alive:  # closed: a frame still in flight passes through as it is
                return image_bgr
            faces = self._cam.get(image_bgr)
            now = time.perf_counter()
            if self._last is not None:
                rate = 1.0 / max(now - self._last, 1e-6)
                self._fps = rate if self._fps is None else 0.9 * self._fps + 0.1 * rate
            self._last = now
            self._started = now if self._started is None else self._started
            self._log.add(faces, now - self._started)
            self._in_view = {int(t) for t in faces.tracker_id}
            out = self._cam.annotate(image_bgr, faces, self._fps)
            self._frames += 1
            self._ages = {int(t): float(a) for t, a in zip(faces.tracker_id, faces.age) if np.isfinite(a)}
        return out

    def configure(self, confidence: float, show_fps: bool, show_range: bool = False, gate: int | None = None,
                  blur_faces: bool = False) -> bool:
        """Apply new settings to the running pipeline (tracks and detector kept); False when they
        need a new session (a confidence below what the detector reports). ``ModelError`` for a gate
        the model has no bounds for."""
        with self._lock:
            if not self._cam.set_confidence(confidence):
                return False
            self._cam.set_annotator(replace(self._cam.annotator.config, show_fps=show_fps, show_range=show_range,
                                            blur_faces=blur_faces))
            self._cam.set_gate(gate)
            return True

    def video_frame_callback(self, frame):
        """The ``av.VideoFrame`` in, annotated ``av.VideoFrame`` out (streamlit-webrtc's contract)."""
        import av

        annotated = self.annotate(frame.to_ndarray(format="bgr24"))
        out = av.VideoFrame.from_ndarray(annotated, format="bgr24")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def snapshot(self) -> tuple[int, dict[int, float], float | None]:
        """Frames annotated so far, the current ages by track id, and the processing rate."""
        with self._lock:
            return self._frames, dict(self._ages), self._fps

    def people(self) -> tuple[list[dict], list[dict]]:
        """``(in view, seen)``: the people on the latest frame and everyone seen since the stream
        started, as ``core.people`` rows (age from all of a track's estimates, range, verdict)."""
        with self._lock:
            seen = self._log.people(self._cam.age_range, self._cam.gate)
            return [p for p in seen if p["track_id"] in self._in_view], seen

    def close(self) -> None:
        """Release the detector; later frames pass through unannotated. Safe to call twice."""
        with self._lock:
            self._release()

    @property
    def closed(self) -> bool:
        return not self._release.alive


def people_markdown(people: list[dict]) -> str:
    """A Markdown table of ``core.people`` rows: person, age, 80% range, verdict."""
    lines = ["| person | age | 80% range | verdict |", "|---|---|---|---|"]
    for p in people:
        age = "…" if p["age"] is None else f"{p['age']:.0f}"
        span = f"{p['age_low']:.0f}-{p['age_high']:.0f}" if p["age_low"] is not None else ""
        lines.append(f"| #{p['track_id']} | {age} | {span} | {p['age_gate'] or ''} |")
    return "\n".join(lines)


def age_histogram(people: list[dict]):
    """A DataFrame of the people seen per 10-year band of their age (0-9 ... 90-99)."""
    import pandas as pd

    ages = pd.Series([p["age"] for p in people if p["age"] is not None], dtype=float)
    counts = pd.cut(ages, bins=range(0, 101, 10), right=False).value_counts(sort=False)
    return pd.DataFrame({"people": counts.values}, index=[f"{b.left}-{b.right - 1}" for b in counts.index])


def streaming_available() -> bool:
    """Whether a Streamlit server runs this page: WebRTC needs its session manager.

    Under Streamlit's ``AppTest`` (no server) there is none, and the page says so instead.
    """
    from streamlit.runtime import Runtime

    return Runtime.exists() and getattr(Runtime.instance(), "_session_mgr", None) is not None
