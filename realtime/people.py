"""The people table of a run (one row per person, ``core.people``): its CSV and JSON files.

Example::

    log = TrackLog()  # core.people
    for result in cam.stream(frames, fps=25):
        log.add(result.detections, result.frame.index / 25)
    rows = log.people(cam.age_range, cam.gate)
    with PeopleSink("people.csv", lambda: rows) as sink:
        pass  # written on leaving: a CSV, or JSON for a .json name
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Callable

from agecam.core.people import PEOPLE_COLUMNS
from .sinks import AtomicTextSink


def is_json_name(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(".json")


def people_text(rows: list[dict], as_json: bool, video: str | None = None) -> str:
    """The people table as CSV (``PEOPLE_COLUMNS``, empty cells for unknowns) or a JSON array; with
    ``video``, every row gains a leading ``video`` field (a batch's combined table)."""
    if video is not None:
        rows = [{"video": video, **row} for row in rows]
    if as_json:
        return json.dumps(rows, indent=1) + "\n"
    out = io.StringIO()
    columns = (("video",) if video is not None else ()) + PEOPLE_COLUMNS
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return out.getvalue()


class PeopleSink(AtomicTextSink):
    """The people table of a run, written when the run's outputs are finished (``rows()`` is asked
    then, so it covers every frame processed), atomically like the other outputs: CSV, or JSON for a
    name ending ``.json``.

    Example::

        with PeopleSink("people.csv", lambda: log.people(cam.age_range, cam.gate)):
            ...  # the run
    """

    def __init__(self, path: str | os.PathLike, rows: Callable[[], list[dict]]):
        super().__init__(path)
        self._rows = rows
        self._written = False

    def finish(self) -> None:
        if not self._written and not self._failed and not self._handle.closed:
            self._written = True
            text = people_text(self._rows(), is_json_name(self.path))
            self._write(lambda: self._handle.write(text))
        super().finish()


def combined_people_text(parts: list[tuple[str, list[dict]]], as_json: bool) -> str:
    """One table of every video's people: ``(video, rows)`` pairs, in order, each row led by its video."""
    if as_json:
        return json.dumps([{"video": video, **row} for video, rows in parts for row in rows], indent=1) + "\n"
    texts = [people_text(rows, False, video) for video, rows in parts]
    header = people_text([], False, video="")
    return header + "".join(text.split("\n", 1)[1] for text in texts)


def read_people_csv(path: str | os.PathLike) -> list[dict]:
    """The rows of a people CSV as written by :func:`people_text` (numbers as numbers, empty as None)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    integers = {"track_id", "frames", "estimates"}
    out = []
    for row in rows:
        parsed = {}
        for key, value in row.items():
            if value == "" or key in ("video", "age_gate"):
                parsed[key] = value or None
            else:
                parsed[key] = int(value) if key in integers else float(value)
        out.append(parsed)
    return out
