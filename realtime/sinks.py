"""Outputs that are either complete or absent: annotated video, per-face CSV and JSON Lines."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import queue
import threading
from pathlib import Path

import cv2
import numpy as np

from agecam.core.age_gate import verdict_name
from agecam.core.atomic import opencv_path, output_target, remove_stale_partials, temporary_name
from agecam.core.file_names import name_text

log = logging.getLogger(__name__)

# Later columns were added at the end so older readers keep working: age_low, age_high (the calibrated
# 80% range), then detected (1: found on this frame; 0: carried over a missed detection on a predicted box),
# then age_gate (over, under or check with --age-gate; empty without one or while the age is unknown),
# then quality (0-1, core.quality: how far this frame's estimate can be trusted; empty on frames
# without an estimate of that face), then age_shown (1 where the single age was on screen, 0 where the
# track's range or a placeholder was, its range still too wide: core.fusion.ShownAgeRule).
CSV_COLUMNS = ("frame", "time_s", "track_id", "x", "y", "w", "h", "age", "age_low", "age_high", "detected",
               "age_gate", "quality", "age_shown")
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
# Frames waiting for the encoding thread at most: a slow disk holds the pipeline back, not memory.
ENCODE_QUEUE_FRAMES = 8


class VideoSink:
    """Write frames to a video that appears under its name only once finalised.

    Frames go to a hidden temporary file, encoded by a thread of their own (OpenCV lets go of
    the GIL while it encodes, so encoding overlaps detection and inference of the next frames);
    leaving the ``with`` block (normally, on error or on Ctrl-C) waits for them, closes the file
    and renames it into place if any frame was written, else removes it.

    Example::

        with VideoSink("out.mp4", fps=30, size=(640, 480)) as sink:
            sink.write(frame)
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], background: bool = True):
        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC:
            raise ValueError(f"unsupported video type {self.path.suffix or '(none)'}; use one of {', '.join(FOURCC)}")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"output folder not found: {self.path.parent}")
        self.fps, self.size, self.frames, self._resized = fps, size, 0, False
        self._finished = False  # closed and checked, not yet renamed into place
        remove_stale_partials(self.path)
        self._tmp = temporary_name(self.path)  # plain characters, whatever the video's name (OpenCV needs them)
        self._folder = contextlib.ExitStack()  # holds the name OpenCV writes by until the file is complete
        try:
            name = self._folder.enter_context(opencv_path(self._tmp))
        except OSError as error:
            raise OSError(f"cannot write video {name_text(self.path)}: {error.strerror or error}") from None
        self._writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()]), fps, size)
        if not self._writer.isOpened():
            self._folder.close()
            self._tmp.unlink(missing_ok=True)
            raise OSError(f"cannot write video {name_text(self.path)}")
        self._error: BaseException | None = None  # what the encoding thread met, raised to the caller
        self._dropping = False  # aborting: frames still queued are not encoded
        self._queue: queue.Queue | None = queue.Queue(ENCODE_QUEUE_FRAMES) if background else None
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._encode_loop, name="agecam-encode", daemon=True)
            self._thread.start()

    def write(self, frame: np.ndarray, owned: bool = False) -> None:
        """Append a frame; one of another size is scaled to fit the video, keeping its aspect ratio.
        ``owned``: the caller hands the array over and will not change it (else it is copied)."""
        if self._error is not None:
            raise OSError(f"could not write video {self.path}: {self._error}")
        if (frame.shape[1], frame.shape[0]) != self.size:
            if not self._resized:
                log.warning("%s: the frame size changed from %dx%d to %dx%d at frame %d; such frames are scaled "
                            "to fit", self.path, *self.size, frame.shape[1], frame.shape[0], self.frames)
                self._resized = True
            frame, owned = fit_into(frame, self.size), True
        if self._queue is None:
            self._writer.write(frame)
        else:
            self._queue.put(frame if owned else frame.copy())
        self.frames += 1

    def _encode_loop(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self._error is None and not self._dropping:
                try:
                    self._writer.write(frame)
                except Exception as error:  # cv2.error; reported by the next write or finish
                    self._error = error

    def _join_encoder(self) -> None:
        """Wait until every queued frame is encoded (or dropped, when aborting)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def finish(self) -> None:
        """Complete the temporary file and check it holds every frame written (``OSError`` if not)."""
        if self._writer is None:
            return
        self._join_encoder()
        self._writer.release()
        self._writer = None
        self._folder.close()
        if self._error is not None:
            self._tmp.unlink(missing_ok=True)
            raise OSError(f"could not write video {self.path}: {self._error}; nothing was written")
        if not self.frames:
            self._tmp.unlink(missing_ok=True)
            return
        # OpenCV reports no write error (a full disk included): check the finished file holds them all.
        stored = _frame_count(self._tmp)
        if stored != self.frames:
            self._tmp.unlink(missing_ok=True)
            raise OSError(f"could not finish writing {self.path} (is the disk full? {stored} of {self.frames} "
                          "frames stored); nothing was written")
        self._finished = True

    def commit(self) -> None:
        """Put a finished video under its name."""
        if self._finished:
            os.replace(self._tmp, self.path)
            self._finished = False
            log.info("wrote %s (%d frames)", self.path, self.frames)

    def close(self) -> None:
        self.finish()
        self.commit()

    def abort(self) -> None:
        """Drop the video: nothing appears under its name."""
        self._dropping = True
        self._join_encoder()
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._folder.close()
        self._finished = False
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AtomicTextSink:
    """A text file that appears under its name only when complete (``close``), or never (``abort``).

    A special file (``/dev/stdout``, a pipe) is written directly. Any write error (a full disk)
    raises ``OSError`` and leaves no file behind.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"output folder not found: {self.path.parent}")
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a folder; give a file name")
        # A device, pipe, terminal or a process's descriptor (/dev/stdout, or a link to one) is written
        # in place: renaming would replace it. A link to a regular file has its target replaced.
        self._target, self.special = output_target(self.path)
        if self.special:
            self._tmp = self._target
        else:
            remove_stale_partials(self._target)
            self._tmp = temporary_name(self._target)
        # Appending: a redirected descriptor (> or >>) keeps what its shell put there.
        self._handle = open(self._tmp, "a" if self.special else "w", newline="")
        self._failed = False
        self._finished = False

    def _write(self, lines) -> None:
        try:
            lines()
        except Exception:  # a full disk, a value the encoding cannot write: a line may be cut
            self._failed = True  # so the file must not be kept
            raise

    def finish(self) -> None:
        """Complete the temporary file (``OSError`` if any write failed; nothing is kept then)."""
        if self._handle.closed:
            return
        try:
            self._handle.close()  # flushes: a full disk shows here
            error = None
        except OSError as caught:
            error = caught
        if error is not None or self._failed:
            if not self.special:
                self._tmp.unlink(missing_ok=True)
            if error is not None:
                raise OSError(f"could not finish writing {self.path}: {error.strerror or error}") from None
            return
        self._finished = True

    def commit(self) -> None:
        """Put a finished file under its name."""
        if self._finished and not self.special:
            os.replace(self._tmp, self._target)
        self._finished = False

    def close(self) -> None:
        """Finish the file and put it in place (nothing is kept if any write failed)."""
        self.finish()
        self.commit()

    def abort(self) -> None:
        """Drop the file: nothing appears under its name."""
        self._failed = True
        with contextlib.suppress(OSError):
            self.finish()
        if self._finished and not self.special:
            self._tmp.unlink(missing_ok=True)
        self._finished = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CsvSink(AtomicTextSink):
    """One row per face per frame (``frame,time_s,track_id,x,y,w,h,age,age_low,age_high,detected,age_gate,
    quality,age_shown``), written atomically.

    Example::

        with CsvSink("faces.csv") as sink:
            sink.write(frame_index, time_s, detections)
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self._writer = csv.writer(self._handle)
        self._writer.writerow(CSV_COLUMNS)

    def write(self, frame_index: int, time_s: float, detections) -> None:
        def rows():
            for (x, y, w, h), track_id, age, low, high, detected, verdict, quality, shown in zip(
                    detections.xywh, detections.tracker_id, detections.age, detections.age_low,
                    detections.age_high, detections.detected, detections.verdict, detections.quality,
                    detections.age_shown):
                self._writer.writerow([frame_index, f"{time_s:.3f}", int(track_id), f"{x:.1f}", f"{y:.1f}",
                                       f"{w:.1f}", f"{h:.1f}", *(_number(v) for v in (age, low, high)),
                                       int(detected), verdict_name(verdict),
                                       f"{quality:.3f}" if np.isfinite(quality) else "",
                                       int(bool(shown) and np.isfinite(age))])

        self._write(rows)


class JsonlSink(AtomicTextSink):
    """One JSON object per face per frame (JSON Lines), written atomically: ``video``, ``frame``,
    ``time_s``, ``track_id``, ``box`` (``[x, y, w, h]`` in pixels), ``score`` (the detector's), ``age``,
    ``age_low``, ``age_high`` (null while unknown), ``detected`` and ``age_gate`` (``over``, ``under``,
    ``check``; null without a gate or while the age is unknown), ``quality`` (0-1, ``core.quality``;
    null on frames without an estimate of that face) and ``age_shown`` (true where the single age was
    on screen, false where the range or a placeholder was).

    Example::

        with JsonlSink("faces.jsonl", video="clip.mp4") as sink:
            sink.write(frame_index, time_s, detections)
    """

    def __init__(self, path: str | os.PathLike, video: str):
        super().__init__(path)
        self.video = name_text(video)

    def write(self, frame_index: int, time_s: float, detections) -> None:
        def lines():
            for (x, y, w, h), score, track_id, age, low, high, detected, verdict, quality, shown in zip(
                    detections.xywh, detections.confidence, detections.tracker_id, detections.age,
                    detections.age_low, detections.age_high, detections.detected, detections.verdict,
                    detections.quality, detections.age_shown):
                record = {"video": self.video, "frame": frame_index, "time_s": round(float(time_s), 3),
                          "track_id": int(track_id), "box": [round(float(v), 1) for v in (x, y, w, h)],
                          "score": round(float(score), 3), "age": _json_number(age),
                          "age_low": _json_number(low), "age_high": _json_number(high),
                          "detected": bool(detected), "age_gate": verdict_name(verdict) or None,
                          "quality": None if not np.isfinite(quality) else round(float(quality), 3),
                          "age_shown": bool(shown) and bool(np.isfinite(age))}
                self._handle.write(json.dumps(record) + "\n")

        self._write(lines)


def fit_into(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (width, height) whole, centred on black bars."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    inner = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    canvas = np.zeros((height, width, 3), image.dtype)
    left, top = (width - inner[0]) // 2, (height - inner[1]) // 2
    canvas[top:top + inner[1], left:left + inner[0]] = cv2.resize(image, inner, interpolation=cv2.INTER_AREA)
    return canvas


def _number(value: float) -> str:
    return f"{value:.1f}" if np.isfinite(value) else ""


def _json_number(value: float) -> float | None:
    return round(float(value), 1) if np.isfinite(value) else None


def _frame_count(path: Path) -> int:
    """How many video frames the file at ``path`` holds, read from its container (packets are
    counted, none decoded: a few ms for a long clip); 0 when it cannot be opened."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.error.FFmpegError, IndexError, OSError):
        return 0
