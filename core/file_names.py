"""File names in text: how a name that is not valid UTF-8 is written, and handed to OpenCV.

On POSIX a file name is bytes. Python carries the bytes that are not valid UTF-8 (an old archive's
Latin-1 ``\\xe9``, a Samba share's ``\\xff``) as surrogate escapes (``'\\udce9'``), which no UTF-8 writer
accepts and which OpenCV's bindings crash on. The rule:

- Files are opened, read and renamed by their real bytes (Python's ``os`` functions do this).
- Text outputs (CSV, JSON, JSON Lines, people tables, reports, messages) write such a name with each
  byte that is not valid UTF-8 as ``\\xNN``: ``clip_\\xff.mp4``. Every valid character is written as is.
- OpenCV is never handed such a name: writers give it a temporary name of plain characters (see
  ``core.atomic.temporary_name``) and rename the finished file into place.

Example::

    >>> name_text("clip_\\udcff.mp4")
    'clip_\\\\xff.mp4'
"""

from __future__ import annotations

import os


def is_utf8(text: str) -> bool:
    """Whether ``text`` holds only characters UTF-8 can write (no surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def name_text(path: str | os.PathLike) -> str:
    """``path`` as text outputs write it: as is when valid UTF-8, else with ``\\xNN`` for each byte
    that is not."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text if is_utf8(text) else os.fsencode(text).decode("utf-8", "backslashreplace")
