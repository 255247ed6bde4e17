"""What ``agecam train --resume`` continues: the run folder's backup, checked before any work.

Keras' ``BackupAndRestore`` keeps two generations in ``<run>/backup`` (``latest.weights.h5`` and the
one before, ``.bkp``) and falls back to the older one when the newer is damaged. Resuming with no
backup would silently train from scratch, and with both damaged would fail deep inside Keras with an
HDF5 message: both are told here in one line that names the folder and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path


def default_run_dir(out: Path) -> Path:
    """Where a run writing ``out`` keeps its resumable state: ``<out>.run``."""
    out = Path(out)
    return out.with_name(out.name + ".run")


class ResumeError(ValueError):
    """``--resume`` cannot continue: nothing to resume, or the backup is damaged."""


def check_resumable(run_dir: Path) -> str:
    """The one-line description of the run ``--resume`` will continue (``ResumeError`` if none can be)."""
    backup = Path(run_dir) / "backup"
    generations = [backup / "latest.weights.h5", backup / "latest.weights.h5.bkp"]
    present = [path for path in generations if path.is_file()]
    if not present:
        raise ResumeError(f"nothing to resume: {run_dir} holds no backup of an earlier run (train without "
                          "--resume to start one, or give its --run-dir)")
    problems = {path: _damage(path) for path in present}
    usable = [path for path in present if problems[path] is None]
    if not usable:
        reason = problems[present[0]]
        raise ResumeError(f"cannot resume: the backup {present[0]} is damaged ({reason}) and no older one is "
                          f"usable; delete {backup} and train again without --resume (its epochs are lost)")
    epoch = _epochs_done(backup, older=usable[0] != generations[0])
    done = f" after epoch {epoch}" if epoch is not None else ""
    older = " (its latest backup is damaged: the one before is used)" if usable[0] != generations[0] else ""
    return f"resuming the run in {run_dir}{done}{older}"


def _damage(path: Path) -> str | None:
    """Why the HDF5 file ``path`` cannot be read, or None when it can."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            handle.visit(lambda name: None)
    except (OSError, ValueError) as error:
        return str(error).split(" (")[0] or type(error).__name__
    return None


def _epochs_done(backup: Path, older: bool) -> int | None:
    metadata = backup / ("training_metadata.json.bkp" if older else "training_metadata.json")
    try:
        return int(json.loads(metadata.read_text())["epoch"])  # Keras stores the epochs completed
    except (OSError, ValueError, KeyError, TypeError):
        return None
