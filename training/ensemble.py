"""Combine shipped models into an ensemble: the mean of their ages, evaluated like any model.

    agecam ensemble --data ../shared/data/utkface-crop-part1 --members resnet50,cnn

writes ``models/ensemble.json``: a card naming the members and their weights (no weights of
its own: it reuses the members' files and exports) with its validation and test metrics, so
the tools and ``agecam evaluate --model ensemble`` treat it like a trained model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from agecam.core.age_model import AgeModel, EnsembleRunner, ModelError, models_dir
from agecam.core.model_card import write_card
from agecam.core.onnx_runner import file_sha256
from .evaluation.evaluate import EvaluateConfig, evaluate
from .split import DEFAULT_MANIFEST
from .train import repo_relative

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnsembleConfig:
    """Which shipped models to average (equal weights unless given) and the data to evaluate on."""

    data: Path
    members: tuple[str, ...] = ("resnet50", "cnn")
    weights: tuple[float, ...] = ()
    name: str = "ensemble"
    folder: Path = field(default_factory=models_dir)
    manifest: Path = DEFAULT_MANIFEST


def build_ensemble(config: EnsembleConfig) -> dict:
    """Evaluate the ensemble on the validation and test splits and write its card; returns it."""
    if (Path(config.folder) / f"{config.name}.keras").exists() or config.name in config.members:
        raise ModelError(f"{config.name!r} is a trained model's name; give the ensemble another --name")
    weights = list(config.weights or [1.0] * len(config.members))
    # The members' own cards measure them on Keras; measure the ensemble the same way.
    members = [AgeModel.load(Path(config.folder) / f"{name}.keras", runtime="keras") for name in config.members]
    path = Path(config.folder) / f"{config.name}.json"
    model = AgeModel(EnsembleRunner(members, weights), name=config.name, path=path, card={})
    metrics = {}
    for split in ("val", "test"):
        result, _ = evaluate(EvaluateConfig(data=config.data, split=split, manifest=config.manifest), model=model)
        metrics[split] = {key: result[key] for key in ("n", "mae", "mse", "rmse", "by_age")}
        log.info("%s on the %s split: MAE %.3f (n=%d)", config.name, split, result["mae"], result["n"])
    card = {
        "name": config.name,
        "architecture": "ensemble",
        "members": list(config.members),
        "member_weights": weights,
        # The metrics hold for these very files; a test checks they are still the shipped ones.
        "member_sha256": {name: file_sha256(m.path) for name, m in zip(config.members, members)},
        "input_size": model.input_size,
        "weights_init": "mean of " + " + ".join(config.members),
        "weights_note": "no weights of its own: the weighted mean of its members' ages",
        "data": {"folder": str(config.data), "manifest": repo_relative(config.manifest)},
        "metrics": metrics,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": f"agecam ensemble --data {config.data} --members {','.join(config.members)} --name {config.name}",
    }
    write_card(path, card)
    return card

