"""Standard output as a data channel: results printed to it are written or the command fails.

- A command started with its standard output closed (``>&-``) fails when it prints results, instead
  of losing them without a word; descriptor 1 is held by ``/dev/null`` meanwhile, so no file the
  command opens takes its place (native libraries print there).
- What could not be flushed at the end (a full disk, ``> /dev/full``) is an error: one line, exit 1.
  A reader that went away (``| head``) ends the command quietly, as Click does.
- :func:`is_stdout` says when an output file is standard output itself (``--csv /dev/stdout``), so
  summaries go to stderr and the data stays parsable.
"""

from __future__ import annotations

import errno
import io
import os
import sys

CLOSED_MESSAGE = ("standard output is closed, so the results cannot be printed; redirect it to a file, "
                  "or write them with an output option")
_STDOUT_NAMES = {"/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"}


class StdoutUnavailable(OSError):
    """Printing results failed: standard output is closed or cannot be written."""


class _ClosedDescriptor(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise StdoutUnavailable(CLOSED_MESSAGE)


def guard_stdout() -> None:
    """Called first: make printing fail when standard output was closed at start."""
    try:
        os.fstat(1)
    except OSError:
        _hold_descriptor_1()
        sys.stdout = io.TextIOWrapper(_ClosedDescriptor(), encoding="utf-8", line_buffering=True)


def _hold_descriptor_1() -> None:
    """Point descriptor 1 at ``/dev/null``: no file opened later takes its number, nothing more goes out."""
    held = os.open(os.devnull, os.O_WRONLY)
    if held != 1:
        os.dup2(held, 1)
        os.close(held)


def flush_stdout() -> str | None:
    """Flush what was printed: ``None`` when it was written, ``""`` when the reader went away, else the
    one-line reason it could not be."""
    if sys.stdout is None:
        return None
    try:
        sys.stdout.flush()
        return None
    except OSError as error:
        _hold_descriptor_1()  # nothing more can go there: the interpreter's flush at exit must not fail again
        sys.stdout = None
        if error.errno == errno.EPIPE:
            return ""
        if isinstance(error, StdoutUnavailable):
            return str(error)
        return f"cannot write the results to standard output: {error.strerror or error}"


def is_stdout(path: str | os.PathLike | None) -> bool:
    """Whether writing ``path`` writes standard output (``/dev/stdout``, or the very file it is
    redirected to)."""
    if path is None:
        return False
    if os.fspath(path) in _STDOUT_NAMES:
        return True
    try:
        out, target = os.fstat(1), os.stat(path)
    except OSError:
        return False
    return (out.st_dev, out.st_ino) == (target.st_dev, target.st_ino)
