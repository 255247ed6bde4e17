"""The age gate on generated tracks, decided on a robust track age (the median of the views).

    agecam gate-test --model ensemble --data ../shared/data/utkface --record

Each held-out test face becomes a track of ``views`` views whose size, blur, noise, colour, tone
and JPEG quality change from view to view (one seeded draw each of the training augmentation's
camera renderings, ``training.augment.camera_rendering``: no geometry, the crop stays the
pipeline's). The track's age is the median of its views' estimates (a robust track age: these views carry no
detector measures for ``core.quality``, so the quality-weighted fusion of ``core.fusion`` that a
stream's people table uses would weigh them alike; ``agecam track-test`` measures that one) and the gate
decides on it with the model's one-sided bounds (``core.age_gate``), for gates at 18 and 25: the
share of minors called over, of clear adults called over, sent to check. The views of a track are
one face under one light, as in a real track, so they are not independent draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agecam.core.age_model import AgeModel, ModelError
from ..data import load_arrays, scan_folder
from .evaluate import gate_report, predict_in_batches
from ..split import DEFAULT_MANIFEST, effective_splits


@dataclass(frozen=True)
class GateTrackConfig:
    """The test faces (a UTKFace folder and its split manifest) and how each becomes a track."""

    data: Path
    manifest: Path = DEFAULT_MANIFEST
    views: int = 8
    seed: int = 23
    batch_size: int = 64


def track_ages(model: AgeModel, images: np.ndarray, views: int, seed: int, batch_size: int = 64) -> np.ndarray:
    """``(faces, views)`` estimates: each uint8 face rendered ``views`` times (seeded), all aged."""
    from ..augment import AugmentConfig, camera_rendering

    config, rng = AugmentConfig(), np.random.default_rng(seed)
    rendered = np.stack([camera_rendering(np.asarray(image, np.uint8), rng, config)
                         for image in images for _ in range(views)])
    return predict_in_batches(model, rendered, batch_size).reshape(len(images), views)


def gate_on_tracks(model: AgeModel, config: GateTrackConfig) -> dict:
    """The gate's outcomes on a generated track per test face (see the module docstring)."""
    bounds = model.require_gate_bounds()
    splits = effective_splits(config.manifest)
    report = scan_folder(config.data)
    records = [r for r in report.records if splits.get(r.name) == "test"]
    if not records:
        raise ModelError(f"{config.data} has no test faces in {config.manifest}")
    images, ages, _ = load_arrays(records, model.input_size, report, alignment=model.alignment)
    estimates = track_ages(model, images, config.views, config.seed, config.batch_size)
    track_age = np.median(estimates, axis=1)
    return {"faces": int(len(ages)), "views": config.views, "seed": config.seed,
            "track_age_mae": float(np.mean(np.abs(track_age - ages))),
            "view_mae": float(np.mean(np.abs(estimates - ages[:, None]))),
            "gates": gate_report(bounds, ages, track_age)}


def record_in_card(model: AgeModel, result: dict) -> dict:
    """Store ``result`` in ``model``'s card as ``age_range.gate.tracks``."""
    from agecam.core.model_card import update_card
    from .assess import card_path_of

    def change(card: dict) -> None:
        card.setdefault("age_range", {}).setdefault("gate", {})["tracks"] = result

    return update_card(card_path_of(model), change)
