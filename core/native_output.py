"""Keep native libraries' start-up chatter (TensorFlow, MediaPipe, OpenCV) off the terminal.

Their C++ code writes straight to file descriptor 2, below Python's logging, so the only way
to hide it is to point that descriptor elsewhere while they load. The command line does (not with
``-vv``), and so do its batch workers; a library user or a debugging session still sees everything.
Stop signals are held meanwhile too: one landing inside a native library's start-up callback is
swallowed with a printed traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}

QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "2", "OPENCV_LOG_LEVEL": "FATAL"}


def quiet_environment() -> None:
    """Ask the native libraries for less output (read when they first load)."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


@contextmanager
def native_stderr_silenced(enabled: bool = True):
    """Send fd 2 to /dev/null inside the block; Python's own ``sys.stderr`` keeps working."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        # Python's stderr writes to fd 2 too: give it the real terminal back meanwhile.
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        yield
    finally:
        sys.stderr.flush()
        if sys.stderr is not python_stderr:
            sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def native_stderr_closed_for_exit() -> None:
    """Send fd 2 to /dev/null for good: called after the command's last line when it is ending on a
    stop signal, because native threads still winding down (MediaPipe's graph, started in the
    background while the signal was held) would otherwise print under that last line."""
    sys.stderr.flush()
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)


@contextmanager
def stop_signals_held():
    """Hold Ctrl-C, SIGTERM and SIGHUP inside the block; one that came meanwhile is delivered (to the
    handler in place) as it ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
