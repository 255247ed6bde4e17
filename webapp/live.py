"""Per-session state of the live page: the pipeline the WebRTC frame callback runs.

streamlit-webrtc calls the frame callback on its own thread, so the session's pipeline and
its counters sit behind one lock; the page reads them with :meth:`LiveSession.snapshot`.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import replace

import numpy as np

from agecam.core.age_model import AgeModel
from agecam.core.analyzer import AgeCam, AgeCamConfig
from agecam.core.stream import StreamSession


class LiveSession:
    """Annotate a browser's camera frames with the shared model and this session's tracker.

    Example::

        session = LiveSession(AgeModel.load("cnn"), confidence=0.5, show_fps=True)
        annotated = session.annotate(frame_bgr)
    """

    def __init__(self, model: AgeModel, confidence: float = 0.5, show_fps: bool = True, show_range: bool = False,
                 gate: int | None = None, blur_faces: bool = False):
        config = AgeCamConfig.from_settings(confidence=confidence, show_fps=show_fps, show_range=show_range,
                                            blur_faces=blur_faces, age_gate=gate)
        self._cam = AgeCam(config, model=model)  # ModelError: an age gate the model has no bounds for
        # Each AgeCam holds a MediaPipe graph (threads and ~20 MB): release it when the session is
        # closed, or at the latest when Streamlit drops the session's state.
        self._release = weakref.finalize(self, self._cam.close)
        self._lock = threading.Lock()
        # The stream's loop, shared with the window and headless runs (core.stream): people, rate.
        self._stream = StreamSession(self._cam).start()
        self._ages: dict[int, str] = {}  # what each face's label shows: its age, or its range while wide
        self._in_view: set[int] = set()

    def annotate(self, image_bgr: np.ndarray) -> np.ndarray:
        with self._lock:  # tracking is stateful: one frame at a time, in order
            if not self._release.alive:  # closed: a frame still in flight passes through as it is
                return image_bgr
            out, faces = self._stream.push(image_bgr)
            self._in_view = {int(t) for t in faces.tracker_id}
            self._ages = {int(t): self._cam.annotator.age_text(a, low, high, shown) for t, a, low, high, shown
                          in zip(faces.tracker_id, faces.age, faces.age_low, faces.age_high, faces.age_shown)
                          if np.isfinite(a)}
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

    def snapshot(self) -> tuple[int, dict[int, str], float | None]:
        """Frames annotated so far, what each face in view shows by track id (``34``, or ``29-44`` while
        its range is wide: ``core.fusion.ShownAgeRule``), and the processing rate."""
        with self._lock:
            return self._stream.frames, dict(self._ages), self._stream.rate

    def people(self) -> tuple[list[dict], list[dict]]:
        """``(in view, seen)``: the people on the latest frame and everyone seen since the stream
        started, as ``core.people`` rows (age from all of a track's estimates, range, verdict)."""
        with self._lock:
            seen = self._stream.people()
            return [p for p in seen if p["track_id"] in self._in_view], list(seen)

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
