"""Reading what training and benchmarks wrote: model cards (``models/NAME.json``), saved
benchmarks (``assets/benchmark-*.json``) and the names of the training figures.

Read by the web app, the README report and the tools alike, so each reads them the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.age_model import available_models, models_dir

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# The training figures' file prefix per architecture (the ResNet50's figures were always "resnet_*").
_FIGURE_PREFIX = {"cnn": "cnn", "resnet50": "resnet"}


def load_cards(folder: Path | None = None) -> dict[str, dict]:
    """Every shipped model's card (ensembles included), by model name."""
    folder = Path(folder or models_dir())
    return {name: json.loads((folder / f"{name}.json").read_text())
            for name in available_models(folder) if (folder / f"{name}.json").is_file()}


def load_benchmarks(folder: Path = ASSETS_DIR) -> list[dict]:
    """Saved ``agecam benchmark --save`` results, in file-name order."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("benchmark-*.json"))]


def benchmark_runtime(result: dict) -> str:
    """The runtime a saved benchmark ran on (those saved before the ONNX path ran on Keras)."""
    return result.get("runtime", "keras")


def figure_prefix(architecture: str) -> str:
    """``assets/PREFIX_training_plot.png`` and its siblings belong to models of ``architecture``."""
    return _FIGURE_PREFIX.get(architecture, architecture)
