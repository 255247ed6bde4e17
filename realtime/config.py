"""Settings of the realtime package that users choose on the command line, stated once here.

Like ``core.config``, this module loads no native library, so the CLI shows these defaults in its
help before OpenCV loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from agecam.core.hardware import cpu_cores

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")


@dataclass(frozen=True)
class StreamConfig:
    """How a network stream (rtsp://, http://, ...) is opened and reopened when it drops.

    A stream that never answers fails after ``open_timeout_s``. One that drops mid-way is reopened
    up to ``reconnect`` times, waiting ``backoff_s``, then twice that, and so on (at most
    ``max_backoff_s``) before each attempt, and each attempt waits ``open_timeout_s`` at most. With
    the defaults, a stream that drops and never comes back is given up within
    1 + 2 + 4 + 3 x 5 = 22 s. A stream of known length (a file served over HTTP) that reaches its
    end is not reopened.

    The attempts are counted across drops until the stream runs well again: a reconnected stream
    earns a fresh set of ``reconnect`` attempts only after ``healthy_after_s`` seconds of frames. So
    a camera that drops once an hour is reopened every time, while one that stalls a moment after
    every reconnect is given up after ``reconnect`` attempts instead of being retried forever.
    """

    reconnect: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 8.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    healthy_after_s: float = 30.0

    def __post_init__(self):
        if self.reconnect < 0:
            raise ValueError(f"reconnect attempts must be 0 or more, not {self.reconnect}")
        if min(self.backoff_s, self.open_timeout_s, self.read_timeout_s, self.healthy_after_s) <= 0:
            raise ValueError("stream timeouts and back-off must be positive")

    def waits(self) -> list[float]:
        """Seconds to wait before each reconnect attempt."""
        return [min(self.backoff_s * 2 ** attempt, self.max_backoff_s) for attempt in range(self.reconnect)]

    def give_up_after_s(self) -> float:
        """Longest time from a drop to giving up."""
        return sum(self.waits()) + self.reconnect * self.open_timeout_s


@dataclass(frozen=True)
class BatchConfig:
    """How a batch of videos is processed: ``workers`` processes (or Ray actors), each preparing its
    pipeline once; videos whose outputs are all present are skipped unless ``overwrite``."""

    workers: int = 0  # 0: one per CPU core
    overwrite: bool = False

    def worker_count(self, videos: int) -> int:
        """Workers to start for ``videos`` files: never more than there are files."""
        wanted = self.workers or cpu_cores()
        return max(1, min(wanted, videos))
