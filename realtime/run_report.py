"""Pictures of a run: one self-contained HTML page (figures inlined) about the people seen.

The page shows the run's numbers (frames, seconds, fps, people), an age histogram of the people
with each person's age and 80% range, who was present when, and the age-gate verdict counts when a
gate was set. It holds no face image unless asked (``faces=True``: each person's clearest view,
inlined); otherwise nothing of anyone's appearance leaves the run.

Example::

    with ReportSink("report/index.html", lambda: log.people(cam.age_range, cam.gate), numbers):
        ...  # the run; the page is written when the run's outputs are finished
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Callable

import numpy as np

from agecam.core.atomic import remove_stale_partials, temporary_name

VERDICT_COLOURS = {"over": "#4caf50", "check": "#ffbe00", "under": "#e63c3c"}


def _figure_png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def report_figures(people: list[dict], gate: int | None) -> dict[str, str]:
    """Base64 PNGs by title: ages (histogram and each person's range), presence over time, verdicts."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never opens a window
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    aged = [p for p in people if p["age"] is not None]
    figures = {}
    fig = Figure(figsize=(9, 3.6))
    hist, ranges = fig.subplots(1, 2)
    if aged:
        ages = np.array([p["age"] for p in aged])
        hist.hist(ages, bins=np.arange(0, max(90, ages.max() + 10), 5), color="#3b7dd8", edgecolor="white")
        order = np.argsort(ages)
        for row, index in enumerate(order):
            person = aged[index]
            colour = VERDICT_COLOURS.get(person["age_gate"] or "", "#3b7dd8")
            if person["age_low"] is not None:
                ranges.plot([person["age_low"], person["age_high"]], [row, row], color=colour, lw=3, alpha=0.6)
            ranges.plot(person["age"], row, "o", color=colour)
        ranges.set_yticks(range(len(order)), [f"#{aged[i]['track_id']}" for i in order])
    if gate is not None:
        for axis in (hist, ranges):
            axis.axvline(gate, color="#444", ls="--", lw=1)
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist.set(title="Ages of the people seen", xlabel="age (years)", ylabel="people")
    ranges.set(title="Each person: age and 80% range" + (" (colour: verdict)" if gate is not None else ""),
               xlabel="age (years)")
    figures["Ages"] = _figure_png(fig)

    fig = Figure(figsize=(9, max(1.8, 0.3 * len(people) + 1)))
    axis = fig.subplots()
    for row, person in enumerate(people):
        colour = VERDICT_COLOURS.get(person["age_gate"] or "", "#3b7dd8")
        axis.plot([person["first_s"], person["last_s"]], [row, row], color=colour, lw=6, solid_capstyle="butt")
    axis.set_yticks(range(len(people)), [f"#{p['track_id']}" for p in people])
    axis.set(title="Who was present when", xlabel="time (s)")
    figures["Presence"] = _figure_png(fig)

    if gate is not None:
        fig = Figure(figsize=(5, 2.6))
        axis = fig.subplots()
        names = list(VERDICT_COLOURS)
        counts = [sum(p["age_gate"] == name for p in people) for name in names]
        axis.bar(names, counts, color=[VERDICT_COLOURS[n] for n in names])
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set(title=f"Age gate {gate}: verdicts", ylabel="people")
        figures["Verdicts"] = _figure_png(fig)
    return figures


def report_html(people: list[dict], numbers: dict, gate: int | None = None,
                faces: dict[int, str] | None = None) -> str:
    """The page: ``numbers`` (label: value), the figures, and a table of the people; ``faces``
    (track id: base64 JPEG) adds each person's picture."""
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in numbers.items())
    figures = "".join(f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
                      for title, png in report_figures(people, gate).items())
    columns = ["track_id", "first_s", "last_s", "seconds_seen", "age", "age_low", "age_high", "age_gate"]
    head = ("<th>face</th>" if faces else "") + "".join(f"<th>{c}</th>" for c in columns)
    rows = []
    for person in people:
        face = ""
        if faces:
            picture = faces.get(person["track_id"])
            face = f'<td><img class="face" src="data:image/jpeg;base64,{picture}"></td>' if picture else "<td></td>"
        rows.append("<tr>" + face + "".join(f"<td>{'' if person[c] is None else html.escape(str(person[c]))}</td>"
                                            for c in columns) + "</tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agecam report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:2px 8px;text-align:right}}img{{max-width:100%}}img.face{{height:64px}}</style>
</head><body><h1>agecam report</h1>
<table id="numbers">{cells}</table>{figures}
<h2>People</h2><table id="people"><tr>{head}</tr>{"".join(rows)}</table>
</body></html>
"""


class ReportSink:
    """The run's report page, written when the run's outputs are finished (``people()`` and
    ``numbers()`` are asked then, covering every frame processed), atomically: it appears complete
    under its name or not at all.

    Example::

        with ReportSink(Path("report/index.html"), people_rows, run_numbers, gate=18):
            ...
    """

    def __init__(self, path: str | os.PathLike, people: Callable[[], list[dict]], numbers: Callable[[], dict],
                 gate: int | None = None, faces: Callable[[], dict[int, str]] | None = None):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"report folder not found: {self.path.parent}")
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise PermissionError(f"report folder {self.path.parent} is not writable")
        self._people, self._numbers, self._faces, self.gate = people, numbers, faces, gate
        remove_stale_partials(self.path)
        self._tmp = temporary_name(self.path)
        self._finished = False

    def finish(self) -> None:
        if self._finished:
            return
        page = report_html(self._people(), self._numbers(), self.gate, self._faces() if self._faces else None)
        try:
            with open(self._tmp, "w") as handle:
                handle.write(page)
        except OSError as error:
            self._tmp.unlink(missing_ok=True)
            raise OSError(f"could not write the report {self.path}: {error.strerror or error}") from None
        self._finished = True

    def commit(self) -> None:
        if self._finished:
            os.replace(self._tmp, self.path)
            self._finished = False

    def abort(self) -> None:
        self._finished = False
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ReportSink":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None and not issubclass(kind, KeyboardInterrupt):
            self.abort()
            return
        self.finish()
        self.commit()
