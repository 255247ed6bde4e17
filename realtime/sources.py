"""Frame sources: a video file, a camera index or a stream URL, behind one interface."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import StreamConfig

log = logging.getLogger(__name__)

# Frames of a stream of known length decoded ahead of processing at most (memory stays bounded).
READ_AHEAD_FRAMES = 32
URL_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class SourceError(Exception):
    """A source that cannot be opened or read."""


class _CameraReader:
    """OpenCV's capture: cameras (V4L2 and the like) and network streams.

    A network stream is opened through FFmpeg with open and read timeouts, so one that never
    answers, or stops sending, fails in bounded time instead of blocking.
    """

    def __init__(self, target: str | int, stream: StreamConfig | None = None):
        self._target, self._stream = target, stream
        self.skipped = 0  # as _FileReader: nothing is skipped, and a live frame has no media time
        self.time_s: float | None = None
        self._open()

    def _open(self) -> None:
        if self._stream is None:
            self._capture = cv2.VideoCapture(self._target)
        else:
            self._capture = cv2.VideoCapture(self._target, cv2.CAP_FFMPEG, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self._stream.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._stream.read_timeout_s * 1000)])
        self.opened = self._capture.isOpened()
        self.fps = (self._capture.get(cv2.CAP_PROP_FPS) or 0.0) if self.opened else 0.0
        # A live stream has no length (0 or negative); a file served over HTTP has one.
        self.frame_count = max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if self.opened else 0

    def reopen(self) -> bool:
        """Close and open the stream again; True when it is open."""
        self._capture.release()
        self._open()
        return self.opened

    def read(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        return image if ok and image is not None and image.size else None

    def release(self) -> None:
        self._capture.release()


class _FileReader:
    """Files decoded with PyAV (FFmpeg), frame by frame.

    Not OpenCV's capture: when a stream's frame size changes mid-way, OpenCV keeps returning the
    last frame of the old size (its scaler fails silently), so frames would be repeated unseen.
    PyAV hands over every frame at its own size. Packets that fail to decode are skipped, as
    players do, and counted.
    """

    def __init__(self, path: str):
        import av

        self.opened, self.fps, self.frame_count, self.skipped = False, 0.0, 0, 0
        self.time_s: float | None = None
        try:
            self._container = av.open(path)
        except (av.FFmpegError, OSError, ValueError):
            return
        if not self._container.streams.video:
            self._container.close()
            return
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: decoding keeps up with the pipeline
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self.frame_count = int(stream.frames or 0)
        self._frames = self._decode(stream)
        self.opened = True

    def _decode(self, stream):
        import av

        for packet in self._container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                self.skipped += 1
                continue
            for frame in frames:
                yield frame.to_ndarray(format="bgr24"), frame.time

    def read(self) -> np.ndarray | None:
        """The next frame; its presentation time in seconds is then in ``time_s`` (None if unknown)."""
        import av

        try:
            image, self.time_s = next(self._frames, (None, None))
        except (av.FFmpegError, OSError):  # the container itself broke off
            return None
        return image

    def release(self) -> None:
        if self.opened:
            self._frames.close()
            self._container.close()
            self.opened = False


@dataclass(frozen=True)
class Frame:
    """One captured frame with its index, capture time (``time.perf_counter``) and, from a file,
    its presentation time: the true clock of a variable-frame-rate file, where index / fps is not."""

    index: int
    image: np.ndarray
    captured_at: float
    media_time: float | None = None  # a file frame's presentation time (seconds from the start)


def describe_source(source: str) -> tuple[str, str | int]:
    """Classify SOURCE as ``("camera", index)``, ``("url", url)`` or ``("file", path)``."""
    text = str(source).strip()
    if text.isdigit():
        return "camera", int(text)
    if text.lower().startswith(URL_SCHEMES):
        return "url", text
    return "file", text


class VideoSource:
    """Frames from a file, camera or URL; cameras and URLs are read in a background thread.

    A live source is read by its own thread into a one-frame buffer, so processing never
    blocks capture and always gets the newest frame (older ones are dropped). A file is read
    in order with no frame dropped, so an output video has the input's frame count, unless
    ``realtime`` plays it at its own frame rate like a camera (to measure live latency).

    Example::

        with VideoSource("clip.mp4") as source:
            for frame in source:
                process(frame.image)
    """

    def __init__(self, source: str, realtime: bool = False, stream: StreamConfig = StreamConfig()):
        self.kind, self.target = describe_source(source)
        if self.kind == "file" and not Path(self.target).is_file():
            raise SourceError(f"video file not found: {self.target}")
        self.stream = stream
        if self.kind == "file":
            self._capture = _FileReader(self.target)
        else:
            self._capture = _CameraReader(self.target, stream if self.kind == "url" else None)
        if not self._capture.opened:
            what = {"camera": "camera", "url": "stream", "file": "video file (not a video?)"}[self.kind]
            waited = f" within {stream.open_timeout_s:g} s" if self.kind == "url" else ""
            raise SourceError(f"cannot open {what}{waited}: {source}")
        self.fps = self._capture.fps
        if not 1.0 <= self.fps <= 240.0:
            self.fps = 30.0
        self.frame_count = self._capture.frame_count
        self.failed: str | None = None  # why the stream stopped early, if it did
        self.reconnects = 0  # times a dropped network stream was opened again
        self._attempts_used = 0  # reconnect attempts since the stream last ran healthy_after_s
        self._reconnected_at: float | None = None
        self._came_back = False  # the last attempt reopened it (and it broke again too soon)
        self.live = self.kind != "file" or realtime
        # A stream of known length (a file over HTTP) is read ahead, never dropped: every frame
        # it decodes is processed, up to where it broke off. A live stream keeps only the newest frame.
        self._keep_every_frame = self.kind == "url" and self._capture.frame_count > 0
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=READ_AHEAD_FRAMES if self._keep_every_frame else 1)
        self._thread: threading.Thread | None = None
        first = self._read_raw()
        if first is None:
            self._capture.release()
            raise SourceError(f"no frame could be read from {source} (not a video, or empty)")
        self.width, self.height = first.shape[1], first.shape[0]
        self._first: np.ndarray | None = first
        self._first_time = self._capture.time_s
        if self.live:
            self._thread = threading.Thread(target=self._capture_loop, name="agecam-capture", daemon=True)
            self._thread.start()

    def _read_raw(self) -> np.ndarray | None:
        return self._capture.read()

    def _capture_loop(self) -> None:
        interval = 1.0 / self.fps if self.kind == "file" else 0.0  # a file is paced like a camera
        due = time.perf_counter() + interval
        frames = 1  # the first was read on opening
        while not self._stop.is_set():
            image = self._read_raw()
            if image is None and self.kind == "url" and not self._reached_known_end(frames):
                image = self._reconnect(frames)
            if image is None:
                if self.kind == "camera":
                    self.failed = "the camera stopped sending frames"
                elif self.kind == "url" and not self._reached_known_end(frames) and not self._stop.is_set():
                    attempts = f"{self.stream.reconnect} reconnect attempt{'s' if self.stream.reconnect != 1 else ''}"
                    self.failed = (f"the stream kept breaking: {attempts}, none followed by "
                                   f"{self.stream.healthy_after_s:g} s of steady frames" if self._came_back
                                   else f"the stream broke and did not come back after {attempts}")
                self._put(None)
                return
            frames += 1
            if interval:
                time.sleep(max(0.0, due - time.perf_counter()))
                due += interval
            self._put(Frame(-1, image, time.perf_counter()))

    def _reached_known_end(self, frames: int) -> bool:
        """A stream of known length (a file over HTTP) that delivered about all of it ended normally."""
        return self._capture.frame_count > 0 and frames >= 0.9 * self._capture.frame_count

    def _reconnect(self, delivered: int) -> np.ndarray | None:
        """Reopen a dropped network stream with back-off; the frame that continues it, or None when it
        stays away (or, for a stream of known length, keeps breaking before it gets back there)."""
        now = time.perf_counter()
        if self._reconnected_at is None or now - self._reconnected_at >= self.stream.healthy_after_s:
            self._attempts_used, self._came_back = 0, False  # it ran well since the last drop: a fresh set
        waits = self.stream.waits()
        while self._attempts_used < self.stream.reconnect:
            attempt = self._attempts_used = self._attempts_used + 1
            wait = waits[attempt - 1]
            log.warning("%s: the stream dropped; reconnect attempt %d of %d in %.0f s", self.target, attempt,
                        self.stream.reconnect, wait)
            if self._stop.wait(wait):
                return None
            if self._capture.reopen():
                image = self._resume_after(delivered)
                if image is not None:
                    self.reconnects += 1
                    self._reconnected_at, self._came_back = time.perf_counter(), True
                    log.warning("%s: reconnected (attempt %d)", self.target, attempt)
                    return image
            self._came_back = False
        return None

    def _resume_after(self, delivered: int) -> np.ndarray | None:
        """The first new frame of a reopened stream. A stream of known length (a file over HTTP) starts
        over from its beginning: the ``delivered`` frames are read again and dropped, so none is
        processed twice and its end is judged by how far into the file it got. A live stream just goes on."""
        if self._capture.frame_count > 0:
            for _ in range(delivered):
                if self._read_raw() is None:
                    return None
        return self._read_raw()

    def _put(self, item) -> None:
        if self._keep_every_frame:
            while not self._stop.is_set():  # wait for room; closing the source ends the wait
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        try:
            self._queue.get_nowait()  # drop the stale frame: live display wants the newest
        except queue.Empty:
            pass
        self._queue.put(item)

    def __iter__(self):
        index = 0
        if self._first is not None:
            yield Frame(index, self._first, time.perf_counter(), None if self.live else self._first_time)
            self._first, index = None, 1
        while True:
            if self.live:
                item = self._queue.get()
                if item is None:
                    return
                image, captured_at = item.image, item.captured_at
            else:
                image = self._read_raw()
                if image is None:
                    if self._capture.skipped:
                        log.warning("%s: %d damaged packets could not be decoded and were skipped",
                                    self.target, self._capture.skipped)
                    # A container's frame count is an estimate (variable frame rate files overstate
                    # it), so a short file is not an error; say so when it is far short.
                    if self.frame_count and index < 0.9 * self.frame_count:
                        log.warning("%s ended after %d frames; its header estimated %d (variable frame rate, "
                                    "or a truncated file)", self.target, index, self.frame_count)
                    return
                captured_at = time.perf_counter()
            yield Frame(index, image, captured_at, None if self.live else self._capture.time_s)
            index += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._capture.release()

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
