"""Write files so that they are either complete or absent: never half-written."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterator

from .file_names import is_utf8


def make_output_folder(folder: str | os.PathLike, label: str = "output folder") -> Path:
    """Make ``folder`` (and its parents) to write outputs into; ``OSError`` with a one-line reason
    naming it as ``label`` when it cannot be made or written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OSError(f"{label} {folder} is a file, not a folder") from None
    except OSError as error:
        raise OSError(f"cannot make {label} {folder}: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OSError(f"{label} {folder} is not writable")
    return folder


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files of ``path`` left by writers that no longer run (killed by SIGKILL or a
    power cut); a live process's temporary file is left alone. Returns what was removed."""
    path = Path(path)
    removed, prefix = [], f".{_temporary_stem(path)}.partial-"
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*{glob.escape(path.suffix)}"):
        pid_text = candidate.name[len(prefix):len(candidate.name) - len(path.suffix)]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


_DESCRIPTOR_LINK = re.compile(r"^/(proc/[^/]+/fd|dev/fd)/\d+$|^/dev/std(in|out|err)$")


def output_target(path: str | os.PathLike) -> tuple[Path, bool]:
    """Where writing ``path`` should land, and whether it must be written in place.

    In place (never replaced by a rename): a character device, FIFO or socket, and anything reached
    through a process's file descriptors (``/dev/stdout``, ``/proc/self/fd/1``, ``/dev/fd/N``), even
    when that descriptor is a redirected regular file. Otherwise the final file of a chain of links
    (its target is replaced, the links stay) or ``path`` itself when it does not exist yet.
    """
    import stat

    current = Path(os.path.abspath(path))
    for _ in range(40):  # the kernel's own limit on nested links
        if _DESCRIPTOR_LINK.match(str(current)):
            return Path(path), True
        if not current.is_symlink():
            break
        current = Path(os.path.abspath(current.parent / os.readlink(current)))
    try:
        mode = os.stat(current).st_mode
    except FileNotFoundError:
        return current, False
    return (Path(path), True) if not stat.S_ISREG(mode) else (current, False)


def temporary_name(path: str | os.PathLike) -> Path:
    """A hidden sibling of ``path`` with the same suffix.

    Same folder, so the final rename is atomic; same suffix, so writers that pick the format
    from the name (OpenCV, matplotlib, Keras) still do.
    """
    path = Path(path)
    return path.with_name(f".{_temporary_stem(path)}.partial-{os.getpid()}{path.suffix}")


def _temporary_stem(path: Path) -> str:
    """The stem a temporary name carries: the file's own when it is valid UTF-8, else a digest of its
    bytes, so OpenCV (which crashes on other names, see ``core.file_names``) can write the file."""
    if is_utf8(path.stem):
        return path.stem
    return "agecam-" + hashlib.sha256(os.fsencode(path.stem)).hexdigest()[:16]


@contextlib.contextmanager
def opencv_path(path: str | os.PathLike) -> Iterator[str]:
    """A name under which OpenCV can open ``path``, valid inside the block.

    OpenCV's Python bindings crash on a name that is not valid UTF-8 (``core.file_names``). Such a
    file name is the caller's to avoid (writers use ``temporary_name``); a folder so named is reached
    through a descriptor of it (``/proc/self/fd/N/NAME``, Linux), or refused in one line elsewhere.
    """
    path = Path(path)
    if is_utf8(str(path)):
        yield str(path)
        return
    if not is_utf8(path.name):
        raise ValueError(f"internal: OpenCV cannot be handed the name {path.name!r}")
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        through = f"/proc/self/fd/{folder}"
        if not os.path.isdir(through):
            raise OSError("cannot write into a folder whose name is not valid UTF-8 on this system")
        yield f"{through}/{path.name}"
    finally:
        os.close(folder)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` only if the block succeeds.

    Example::

        with atomic_path("card.json") as tmp:
            tmp.write_text("{}")
    """
    path = Path(path)
    remove_stale_partials(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` in one step."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, data) -> None:
    """Replace ``path`` with ``data`` as indented JSON (model cards, saved benchmarks) in one step."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
