"""Run the age pipeline over a video source: window, annotated video, CSV and a summary."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agecam.core.analyzer import AgeCam
from agecam.core.file_names import name_text
from agecam.core.people import TrackLog
from agecam.core.stream import StreamSession
from .people import PeopleSink
from .sinks import CsvSink, JsonlSink, VideoSink
from .sources import VideoSource

log = logging.getLogger(__name__)

WINDOW = "agecam"
KEY_QUIT = {ord("q"), ord("Q"), 27}  # q or Esc
KEY_PAUSE, KEY_SNAPSHOT = ord(" "), ord("s")


@dataclass(frozen=True)
class RunConfig:
    """What to do with each processed frame."""

    show_window: bool = True
    output: Path | None = None
    csv: Path | None = None
    jsonl: Path | None = None
    people: Path | None = None  # the people table (realtime.people): CSV, or JSON for a .json name
    report: Path | None = None  # the report page (realtime.run_report), an .html file
    report_faces: bool = False  # the report shows each person's clearest view
    video_name: str = ""  # the JSON Lines' ``video`` field
    snapshot_dir: Path = Path(".")
    max_frames: int | None = None
    # False (a batch): outputs are kept only when the source was processed to its end, so an output
    # that exists is complete; True: a stopped run keeps the frames processed so far.
    keep_partial: bool = True
    handle_signals: bool = True  # False where a parent process decides when to stop (batch workers)


@dataclass
class RunSummary:
    frames: int
    seconds: float
    tracks: list[dict]
    track_log: TrackLog | None = None
    interrupted: bool = False
    stopped_by_user: bool = False
    failure: str | None = None
    stage_seconds: dict[str, list[float]] = field(default_factory=dict)  # per stage, one entry per frame it ran
    inferences: int = 0  # faces sent to the age model
    faces: int = 0  # faces drawn over all frames (rows of the CSV)
    reconnects: int = 0  # times a dropped network stream was opened again
    complete: bool = False  # the source was read to its end (not stopped, not broken off)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict:
        return {"frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
                "tracks": self.tracks, "reconnects": self.reconnects}


def track_summary(people: list[dict]) -> list[dict]:
    """The ``--json`` summary's tracks: each person's fields (``realtime.people``), ``track_id`` as ``id``."""
    return [{"id": row["track_id"], **{k: v for k, v in row.items() if k != "track_id"}} for row in people]


def display_available() -> bool:
    """Whether an OpenCV window can open (an X display on Linux; always elsewhere)."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopRequests:
    """While active, Ctrl-C, SIGTERM and SIGHUP ask the run to stop after the frame in hand (so a frame
    goes to every output or to none); a second signal stops at once (KeyboardInterrupt).

    Example::

        with StopRequests() as stops:
            while not stops.requested:
                ...

    With ``handle_signals`` False it takes no signal (a parent process decides when to stop) and
    ``requested`` stays None.
    """

    def __init__(self, handle_signals: bool = True):
        self.requested: int | None = None
        self._handle_signals = handle_signals
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> "StopRequests":
        if self._handle_signals and threading.current_thread() is threading.main_thread():
            for signum in _STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run(cam: AgeCam, source: VideoSource, config: RunConfig, progress=None, stop=None) -> RunSummary:
    """Process ``source`` frame by frame until it ends, the user quits or Ctrl-C.

    ``progress(frames_done)`` is called after each frame; ``stop()``, when given, is asked after each
    frame whether to stop (a batch's parent process). Outputs are finalised in every case, holding
    exactly the frames processed, unless ``config.keep_partial`` is False and the source was not read
    to its end: then no output is kept.
    """
    session = StreamSession(cam, source.fps, keep_faces=config.report is not None and config.report_faces)
    stage_seconds: dict[str, list[float]] = defaultdict(list)
    inferences = faces = 0
    started = time.perf_counter()
    interrupted = stopped = complete = False

    def numbers() -> dict:  # the report's figures of the run, asked when the outputs are finished
        seconds = time.perf_counter() - started
        gate = {"age gate": cam.gate.threshold} if cam.gate is not None else {}
        return {"source": name_text(config.video_name or str(source.target)), "frames": session.frames,
                "seconds": round(seconds, 1), "fps": round(session.frames / seconds, 1) if seconds > 0 else 0,
                "people": len(session.log.frames), "model": cam.model.name, **gate}

    if config.show_window:
        # A plain window (no Qt toolbar) that the user may resize.
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        cv2.resizeWindow(WINDOW, source.width, source.height)
    outputs = _Outputs(config, source, session.people, numbers, lambda: session.log.faces,
                       cam.gate.threshold if cam.gate is not None else None)
    with outputs, StopRequests(config.handle_signals) as stops:
        try:
            # A new stream for the pipeline: no tracks yet, its time limits at the source's frame rate.
            for result in cam.stream(source, source.fps):
                frame, detections = result.frame, result.detections
                needs_picture = outputs.video is not None or config.show_window
                # Live frames are dropped when processing lags, so their time is the capture clock.
                if source.live:
                    time_s = frame.captured_at - started
                else:  # the file's own clock where it has one (variable frame rate), else index / fps
                    time_s = frame.media_time if frame.media_time is not None else frame.index / source.fps
                shown = session.record(frame.image, detections, time_s, draw=needs_picture)
                if outputs.video is not None:
                    encode_started = time.perf_counter()
                    outputs.video.write(shown, owned=True)  # a fresh annotated copy each frame
                    result.timings["encode"] = time.perf_counter() - encode_started
                for table in outputs.tables:
                    table.write(frame.index, time_s, detections)
                faces += len(detections)
                inferences += result.faces_inferred
                result.timings["capture_to_output"] = time.perf_counter() - frame.captured_at
                for stage, seconds in result.timings.items():
                    stage_seconds[stage].append(seconds)
                if progress is not None:
                    progress(session.frames)
                if config.show_window and _show(shown, frame.index, config.snapshot_dir):
                    stopped = True
                    break
                if config.max_frames and session.frames >= config.max_frames:
                    complete = True  # as far as asked
                    break
                if stops.requested or (stop is not None and stop()):  # after the frame in hand
                    interrupted = True
                    break
            else:
                complete = source.failed is None
        except KeyboardInterrupt:
            interrupted = True
        finally:
            interrupted = interrupted or stops.requested is not None
            outputs.keep = config.keep_partial or complete
            if config.show_window:
                cv2.destroyAllWindows()
    return RunSummary(session.frames, time.perf_counter() - started, track_summary(session.people()), session.log,
                      interrupted, stopped, source.failed, dict(stage_seconds), inferences, faces, source.reconnects,
                      complete)


class _Outputs:
    """The run's sinks (each optional), kept or dropped together.

    On leaving: when ``keep`` is False or the run failed (an error, e.g. a full disk under one of
    them), every sink is dropped; else each is finished, and only when all finished are they put in
    place. So a run that fails leaves no output of any kind, and the outputs of a run that ends or is
    stopped all hold the same frames.
    """

    def __init__(self, config: RunConfig, source: VideoSource, people_rows, numbers, faces, gate: int | None):
        self.keep = True
        self.video, self.tables = None, []
        self.people = self.report = None
        try:
            if config.output is not None:
                self.video = VideoSink(config.output, source.fps, (source.width, source.height))
            if config.csv is not None:
                self.tables.append(CsvSink(config.csv))
            if config.jsonl is not None:
                self.tables.append(JsonlSink(config.jsonl, config.video_name or str(source.target)))
            if config.people is not None:
                self.people = PeopleSink(config.people, people_rows)
            if config.report is not None:
                from .run_report import ReportSink

                self.report = ReportSink(config.report, people_rows, numbers, gate,
                                         faces if config.report_faces else None)
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        for sink in self._sinks():
            sink.abort()

    def _sinks(self) -> list:
        return [s for s in (self.video, *self.tables, self.people, self.report) if s is not None]

    def __enter__(self) -> "_Outputs":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        failed = kind is not None and not issubclass(kind, KeyboardInterrupt)
        if not self.keep or failed:
            self._drop()
            return
        try:
            for sink in self._sinks():
                sink.finish()
        except BaseException:
            self._drop()
            raise
        for sink in self._sinks():
            sink.commit()


def _show(image: np.ndarray, frame_index: int, snapshot_dir: Path) -> bool:
    """Show a frame and handle keys; True when the user asked to quit."""
    cv2.imshow(WINDOW, image)
    key = cv2.waitKey(1) & 0xFF
    while True:
        if key in KEY_QUIT:
            return True
        if key == KEY_SNAPSHOT:
            path = Path(snapshot_dir) / f"agecam-snapshot-{frame_index:06d}.png"
            ok, encoded = cv2.imencode(".png", image)  # written by Python: OpenCV crashes on some folder names
            try:
                if not ok:
                    raise OSError("could not encode the frame")
                path.write_bytes(encoded.tobytes())
                log.warning("snapshot saved to %s", name_text(path))
            except OSError as error:
                log.warning("snapshot not saved to %s: %s", name_text(path), error.strerror or error)
        if key != KEY_PAUSE:
            return False
        key = cv2.waitKey(0) & 0xFF  # paused: wait for the next key
        if key == KEY_PAUSE:
            return False
