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
from agecam.core.detector import DetectorConfig


class LiveSession:
    """Annotate a browser's camera frames with the shared model and this session's tracker.

    Example::

        session = LiveSession(AgeModel.load("cnn"), confidence=0.5, show_fps=True)
        annotated = session.annotate(frame_bgr)
    """

    def __init__(self, model: AgeModel, confidence: float = 0.5, show_fps: bool = True):
        config = AgeCamConfig(detector=DetectorConfig(min_confidence=confidence),
                              annotator=AnnotatorConfig(show_fps=show_fps))
        self._cam = AgeCam(config, model=model)
        # Each AgeCam holds a MediaPipe graph (threads and ~20 MB): release it when the session is
        # closed, or at the latest when Streamlit drops the session's state.
        self._release = weakref.finalize(self, self._cam.close)
        self._lock = threading.Lock()
        self._frames = 0
        self._ages: dict[int, float] = {}
        self._fps: float | None = None
        self._last: float | None = None

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
            out = self._cam.annotate(image_bgr, faces, self._fps)
            self._frames += 1
            self._ages = {int(t): float(a) for t, a in zip(faces.tracker_id, faces.age) if np.isfinite(a)}
        return out

    def configure(self, confidence: float, show_fps: bool) -> bool:
        """Apply new settings to the running pipeline (tracks and detector kept); False when they
        need a new session (a confidence below what the detector reports)."""
        with self._lock:
            if not self._cam.set_confidence(confidence):
                return False
            self._cam.set_annotator(replace(self._cam.annotator.config, show_fps=show_fps))
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

    def close(self) -> None:
        """Release the detector; later frames pass through unannotated. Safe to call twice."""
        with self._lock:
            self._release()

    @property
    def closed(self) -> bool:
        return not self._release.alive


def streaming_available() -> bool:
    """Whether a Streamlit server runs this page: WebRTC needs its session manager.

    Under Streamlit's ``AppTest`` (no server) there is none, and the page says so instead.
    """
    from streamlit.runtime import Runtime

    return Runtime.exists() and getattr(Runtime.instance(), "_session_mgr", None) is not None
