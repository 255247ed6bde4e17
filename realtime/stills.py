"""Still images: age every face of each image, and write annotated copies that never overwrite.

A streaming generator shared by the CLI and Python callers (one result per image, as it is done).
"""

from __future__ import annotations

import collections
import csv
import glob
import os
import queue
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agecam.core.age_gate import verdict_name
from agecam.core.analyzer import AgeCam
from agecam.core.atomic import atomic_path
from agecam.core.detections import Detections
from agecam.core.file_names import name_text
from agecam.core.images import IMAGE_SUFFIXES, ImageError, read_image_file
from .batch import first_of_each, is_pattern
from .sinks import AtomicTextSink

STILLS_CSV_COLUMNS = ("path", "face", "x", "y", "w", "h", "score", "age", "age_low", "age_high", "age_gate",
                      "quality")


def find_images(arguments: Iterable[str | os.PathLike]) -> list[Path]:
    """The image files named by ``arguments``: folders give their images (by suffix, not recursing),
    glob patterns their matches (``**`` recurses), anything else is kept as given (a file, or a name
    that :func:`age_images` reports as not found in its turn); each once, in the order given."""
    found: list[Path] = []
    for argument in map(str, arguments):
        path = Path(argument)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif not path.exists() and is_pattern(argument):
            found.extend(sorted(Path(p) for p in glob.glob(argument, recursive=True)
                                if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return first_of_each(found)


@dataclass
class StillResult:
    """One image: its faces (None when it could not be read), the annotated copy written, and the
    one-line reason for a failure (reading the image or writing its copy)."""

    path: Path
    faces: Detections | None = None
    written: Path | None = None
    error: str | None = None

    def as_json(self) -> dict:
        faces = self.faces if self.faces is not None else Detections.empty()
        return {"path": name_text(self.path), "faces": [face_json(faces, i) for i in range(len(faces))]}


def age_images(cams: AgeCam | Sequence[AgeCam], paths: Iterable[str | os.PathLike],
               output_dir: Path | None = None) -> Iterator[StillResult]:
    """Age each image; with ``output_dir``, write its annotated copy there. Results come in the
    order of ``paths``, each as soon as it and those before it are done.

    With several prepared pipelines (``cams``, one per CPU core), images are read, detected, aged and
    drawn by as many threads at once (OpenCV, MediaPipe and ONNX Runtime let go of Python's lock
    while they work); the annotated copies are named and written in input order, so two inputs named
    alike never overwrite each other, as with one. Leaving the loop early (Ctrl-C) waits for the
    images in hand and starts no more.

    Example::

        for result in age_images(cam, ["a.jpg", "b.png"], Path("annotated")):
            print(result.path, result.error or result.faces.age)
    """
    cams = [cams] if isinstance(cams, AgeCam) else list(cams)
    written: set[Path] = set()  # this run's outputs (resolved): two inputs named alike never overwrite each other

    def finish(path: Path, work: tuple) -> StillResult:
        result, encoded = work
        if encoded is not None:
            try:
                result.written = write_encoded(encoded, path, output_dir, written)
                written.add(result.written.resolve())
            except OSError as error:
                result.error = str(error) if isinstance(error, StillWriteError) else \
                    f"cannot write into {name_text(output_dir)}: {error}"
        return result

    paths = map(Path, paths)
    if len(cams) == 1:
        for path in paths:
            yield finish(path, _age_one(cams[0], path, output_dir))
        return
    idle: queue.SimpleQueue = queue.SimpleQueue()
    for cam in cams:
        idle.put(cam)

    def work(path: Path) -> tuple:
        cam = idle.get()  # a pipeline is used by one thread at a time
        try:
            return _age_one(cam, path, output_dir)
        finally:
            idle.put(cam)

    pending: collections.deque = collections.deque()
    pool = ThreadPoolExecutor(len(cams), thread_name_prefix="agecam-stills")
    try:
        for path in paths:
            pending.append((path, pool.submit(work, path)))
            if len(pending) > 2 * len(cams):  # a few ahead: memory stays bounded on any folder
                done_path, future = pending.popleft()
                yield finish(done_path, future.result())
        while pending:
            done_path, future = pending.popleft()
            yield finish(done_path, future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _age_one(cam: AgeCam, path: Path, output_dir: Path | None) -> tuple:
    """``(result, its annotated copy encoded as annotated_suffix says, or None)`` for one image."""
    try:
        picture = read_image_file(path)
    except FileNotFoundError:
        return StillResult(path, error="file not found"), None
    except IsADirectoryError:
        return StillResult(path, error="a folder, not an image"), None
    except (ImageError, OSError) as error:
        return StillResult(path, error=str(error) or "not a readable image"), None
    result = StillResult(path, cam.get_image(picture))
    if output_dir is None:
        return result, None
    suffix = annotated_suffix(path)
    ok, encoded = cv2.imencode(suffix, cam.annotate(picture, result.faces))
    if not ok:
        result.error = f"cannot encode {name_text(path)} as {suffix}"
        return result, None
    return result, encoded.tobytes()


class StillWriteError(OSError):
    """An annotated copy that cannot be written (the reason is the message)."""


def face_json(faces: Detections, i: int) -> dict:
    """One face of an image as JSON: box (x, y, w, h), score, age and its 80% range (null without calibration)."""
    low, high = float(faces.age_low[i]), float(faces.age_high[i])
    return {"box": [round(float(v), 1) for v in faces.xywh[i]], "score": round(float(faces.confidence[i]), 3),
            "age": round(float(faces.age[i]), 1),
            "age_range": [round(low, 1), round(high, 1)] if np.isfinite(low) and np.isfinite(high) else None,
            "age_gate": verdict_name(faces.verdict[i]) or None,
            "quality": round(float(faces.quality[i]), 3) if np.isfinite(faces.quality[i]) else None}


class StillsCsvSink(AtomicTextSink):
    """One row per face of each image (``path,face,x,y,w,h,score,age,age_low,age_high,age_gate,quality``; ``face``
    counts from 1 within its image), written atomically.

    Example::

        with StillsCsvSink("faces.csv") as sink:
            for result in age_images(cam, paths):
                sink.write(result)
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self._writer = csv.writer(self._handle)
        self._writer.writerow(STILLS_CSV_COLUMNS)

    def write(self, result: StillResult) -> None:
        faces = result.faces if result.faces is not None else Detections.empty()

        def rows():
            for i in range(len(faces)):
                face = face_json(faces, i)
                low, high = face["age_range"] or ("", "")
                self._writer.writerow([name_text(result.path), i + 1, *face["box"], face["score"], face["age"], low, high,
                                       face["age_gate"] or "", "" if face["quality"] is None else face["quality"]])

        self._write(rows)


def annotated_suffix(source: Path) -> str:
    """The annotated copy's type: the source's when it is an image type agecam writes, else PNG."""
    return source.suffix if source.suffix.lower() in IMAGE_SUFFIXES else ".png"


def annotated_name(source: Path, output_dir: Path, taken: set[Path] = frozenset()) -> Path:
    """Where the annotated copy of ``source`` goes: the source's name; ``NAME_agecam`` when that is
    the source itself; ``NAME_2``, ``NAME_3`` ... when an earlier input of this run already took it
    (``taken``: the resolved paths written so far)."""
    target = output_dir / source.name
    if target.resolve() == source.resolve():  # never overwrite the user's original
        target = output_dir / f"{source.stem}_agecam{source.suffix}"
    target = target.with_suffix(annotated_suffix(source))
    stem, number = target.stem, 2
    while target.resolve() in taken or target.resolve() == source.resolve():
        target = target.with_name(f"{stem}_{number}{target.suffix}")
        number += 1
    return target


def write_encoded(encoded: bytes, source: Path, output_dir: Path, taken: set[Path] = frozenset()) -> Path:
    """Write the annotated copy of ``source``, encoded as :func:`annotated_suffix` says, into
    ``output_dir``, atomically, under the name :func:`annotated_name` gives it; returns its path."""
    target = annotated_name(source, output_dir, taken)
    if target.is_dir():
        raise StillWriteError(f"cannot write {name_text(target)}: a folder of that name is in the way")
    # Written by Python, which takes any file name (OpenCV crashes on some: core.file_names).
    with atomic_path(target) as tmp:
        tmp.write_bytes(encoded)
    return target
