"""Model cards (``models/NAME.json``): the one place that reads and writes them, versioned;
plus reading saved benchmarks (``assets/benchmark-*.json``) and the training figures' names.
It imports no other module of ``core`` but the atomic writer and the layout (listing the shipped
models' cards is :func:`agecam.core.age_model.load_cards`).

Training, evaluation and the ensemble fill a card's content; the web app, the docs' generated tables
and the tools read it, all through :func:`read_card`, :func:`write_card` and :func:`update_card`.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .atomic import write_json_atomic
from .paths import ASSETS_DIR

# Version 2: cards carry "card_version" and "written_utc"; version 1 (no "card_version") had neither.
CARD_VERSION = 2
# Where a run kept its state and whether it resumed: true of one machine only, not of the model.
MACHINE_FIELDS = ("run_dir", "resume")


class CardError(ValueError):
    """A model card that cannot be read: not JSON, not an object, or from a newer agecam."""


def read_card(path: str | os.PathLike) -> dict:
    """The card at ``path`` (``FileNotFoundError`` when absent); :class:`CardError` with a one-line
    reason when it is unusable."""
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CardError(f"{path} is not a model card (not JSON: {error})") from None
    if not isinstance(card, dict):
        raise CardError(f"{path} is not a model card (a JSON object is expected)")
    version = card.get("card_version", 1)
    if not isinstance(version, int) or version > CARD_VERSION:
        raise CardError(f"{path} has card version {version!r}; this agecam reads up to {CARD_VERSION}: update agecam")
    return card


def write_card(path: str | os.PathLike, card: dict) -> dict:
    """Write ``card`` atomically as the current version, stamped with the time in UTC; returns what was written."""
    written = {**card, "card_version": CARD_VERSION,
               "written_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    config = written.get("training", {}).get("config")
    if isinstance(config, dict):
        written["training"] = {**written["training"],
                               "config": {k: v for k, v in config.items() if k not in MACHINE_FIELDS}}
    write_json_atomic(path, written)
    return written


def update_card(path: str | os.PathLike, change: Callable[[dict], None]) -> dict:
    """Read the card at ``path`` as it is now (an empty one when there is none), let ``change`` edit
    it in place, and write it back (:func:`write_card`); returns what was written. The tools that add
    to a shipped card (calibrate, evaluate-photos) go through here, so none writes back a copy read
    before another's addition."""
    card = read_card(path) if Path(path).exists() else {}
    change(card)
    return write_card(path, card)


# The training figures' file prefix per architecture (the ResNet50's figures were always "resnet_*").
_FIGURE_PREFIX = {"cnn": "cnn", "resnet50": "resnet"}


def load_benchmarks(folder: Path = ASSETS_DIR) -> list[dict]:
    """Saved ``agecam benchmark --save`` results, in file-name order."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("benchmark-*.json"))]


def benchmark_runtime(result: dict) -> str:
    """The runtime a saved benchmark ran on (those saved before the ONNX path ran on Keras)."""
    return result.get("runtime", "keras")


def figure_prefix(architecture: str) -> str:
    """``assets/PREFIX_training_plot.png`` and its siblings belong to models of ``architecture``."""
    return _FIGURE_PREFIX.get(architecture, architecture)


FIGURE_KINDS = ("training_plot", "prediction_plot", "error_by_age")  # the figures of a model, in page order


def figure_path(architecture: str, kind: str, folder: Path = ASSETS_DIR) -> Path:
    """Where a model of ``architecture`` has its figure ``kind`` (one of :data:`FIGURE_KINDS`)."""
    return Path(folder) / f"{figure_prefix(architecture)}_{kind}.png"
