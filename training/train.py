"""Train an age model on UTKFace: data → model → compile → fit → evaluate → ship.

A run keeps its working state in ``<out>.run/`` (last-epoch backup for ``--resume``, best
checkpoint, CSV history) and, when done, writes ``<out>.keras`` (no optimizer, loadable on any
backend), the model card ``<out>.json`` and the figures in ``assets/``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from core.age_model import AgeModel, ModelError
from core.atomic import atomic_path, write_json_atomic
from training.augment import AugmentConfig, AugmentedFaces
from training.data import DataError, load_arrays, scan_folder
from training.evaluate import metrics_report, predict_in_batches
from training.models import build_model, resolve_weights
from training.plots import plot_error_by_band, plot_predictions, plot_training
from training.split import DEFAULT_MANIFEST, SplitConfig, read_manifest, split_records, write_manifest

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Figure names follow the seed app's, so its readers find them where they expect.
PLOT_PREFIX = {"cnn": "cnn", "resnet50": "resnet"}
# The project's accuracy targets on its test split (issue #3), recorded in every card.
TARGET_TEST_MAE = {"cnn": 6.0, "resnet50": 5.5}


def target_status(arch: str, test_mae: float) -> dict | None:
    """Whether a model meets its architecture's test-MAE target, and by how much it misses."""
    target = TARGET_TEST_MAE.get(arch)
    if target is None:
        return None
    return {"test_mae_at_most": target, "met": bool(test_mae <= target),
            "missed_by": round(max(0.0, test_mae - target), 2)}


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved into the model card."""

    data: Path
    arch: str = "cnn"
    out: Path = Path("models/cnn")
    epochs: int = 30
    batch_size: int = 64
    img_size: int = 96
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.0  # linear warm-up; deep nets from scratch start unstable without it
    weights: str = "none"
    init_from: Path | None = None  # a trained .keras model whose weights start this run
    patience: int = 10
    seed: int = 1337
    manifest: Path | None = None  # default: training/splits/utkface.csv
    assets: Path = REPO_ROOT / "assets"
    resume: bool = False
    strategy: str | None = None  # "mirrored": tf.distribute over the visible GPUs
    limit: int | None = None  # use only the first N images (smoke tests)
    run_dir: Path | None = None  # resumable state; default <out>.run next to the model
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self):
        self.data, self.out, self.assets = Path(self.data), Path(self.out), Path(self.assets)
        if self.manifest is None:
            self.manifest = DEFAULT_MANIFEST
        self.manifest = Path(self.manifest)
        self.run_dir = Path(self.run_dir) if self.run_dir else self.out.with_name(self.out.name + ".run")


def train(config: TrainConfig) -> dict:
    """Run a whole training and return the model card it wrote."""
    keras.utils.set_random_seed(config.seed)
    started = time.time()

    # --- data -------------------------------------------------------------------------
    report = scan_folder(config.data)
    records = report.records[: config.limit] if config.limit else report.records
    manifest = read_manifest(config.manifest) if config.manifest.is_file() else None
    parts, assignment = split_records(records, manifest, config.split)
    if manifest is None or set(assignment) - set(manifest):
        merged = {**(manifest or {}), **assignment}
        write_manifest(merged, config.manifest)
        log.info("split manifest written to %s", config.manifest)
    arrays = {name: load_arrays(recs, config.img_size, report) for name, recs in parts.items()}
    (x_train, y_train, _), (x_val, y_val, _), (x_test, y_test, _) = (arrays[s] for s in ("train", "val", "test"))
    if len(x_train) == 0 or len(x_val) == 0:
        raise DataError(f"not enough images to train: {len(x_train)} train, {len(x_val)} validation")
    log.info("data: %s; train %d, val %d, test %d", report.summary(), len(x_train), len(x_val), len(x_test))
    train_batches = AugmentedFaces(x_train, y_train, config.batch_size, seed=config.seed, config=config.augment)

    # --- model and compile ------------------------------------------------------------
    weights = resolve_weights(config.weights) if config.arch == "resnet50" else "none"
    # Read now: the run may replace the model it starts from (--out models/NAME).
    earlier_stages = earlier_training_stages(config.init_from)
    with _strategy_scope(config.strategy):
        model = build_model(config.arch, config.img_size, weights)
        if config.init_from is not None:
            _load_trained_weights(model, config.init_from)
        optimizer = keras.optimizers.AdamW(learning_rate_schedule(config, len(train_batches)),
                                           weight_decay=config.weight_decay)
        # MAE is both the loss and the figure we are judged on; it is also robust to label noise.
        model.compile(optimizer=optimizer, loss="mae", metrics=["mae", "mse"])

    # --- fit --------------------------------------------------------------------------
    run_dir = config.run_dir
    if not config.resume and run_dir.exists():
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    history_path, best_path = run_dir / "history.csv", run_dir / "best.weights.h5"
    previous_best = _best_val_mae(history_path) if config.resume else math.inf
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(best_path), monitor="val_mae", mode="min", save_best_only=True, save_weights_only=True,
            initial_value_threshold=previous_best if math.isfinite(previous_best) else None,
        ),
        keras.callbacks.CSVLogger(str(history_path), append=config.resume),
        keras.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=config.patience),
        keras.callbacks.TerminateOnNaN(),
    ]
    model.fit(
        train_batches,
        validation_data=(x_val.astype(np.float32), y_val),
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    history = _read_history(history_path)
    if best_path.is_file():
        model.load_weights(str(best_path))

    # --- evaluate and ship ------------------------------------------------------------
    config.out.parent.mkdir(parents=True, exist_ok=True)
    model_path = config.out.with_suffix(".keras")
    stored_float16 = _save_for_inference(model, config, model_path)
    shipped = AgeModel.load(model_path, runtime="keras")  # the card measures the model itself
    val_pred = predict_in_batches(shipped, x_val)
    test_pred = predict_in_batches(shipped, x_test)
    card = {
        "name": config.out.name,
        "architecture": config.arch,
        "input_size": config.img_size,
        "weights_init": (f"model:{Path(config.init_from).name}" if config.init_from is not None
                         else weights if weights in ("imagenet", "none") else f"file:{weights}"),
        "weights_note": _weights_note(config, weights),
        "file": model_path.name,
        "weights_storage": "float16 (run in float32 after loading)" if stored_float16 else "float32",
        "data": {
            "folder": str(config.data),
            "images_used": len(records),
            "scan": report.summary(),
            "skipped": dict(report.skipped),
            "manifest": repo_relative(config.manifest),
            "split_sizes": {"train": len(x_train), "val": len(x_val), "test": len(x_test)},
        },
        "training": {
            "epochs_run": len(history.get("loss", [])),
            "best_epoch": int(np.argmin(history["val_mae"])) + 1 if history.get("val_mae") else None,
            "seconds": round(time.time() - started, 1),
            "hardware": _hardware(),
            "keras_backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "config": _jsonable(asdict(config)),
        },
        "metrics": {"val": metrics_report(y_val, val_pred), "test": metrics_report(y_test, test_pred)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if earlier_stages:
        card["earlier_stages"] = earlier_stages
    card["target"] = target_status(config.arch, card["metrics"]["test"]["mae"])
    write_json_atomic(config.out.with_suffix(".json"), card)
    _write_plots(config, history, y_test, test_pred, card["metrics"]["test"]["by_age"])
    log.info("test split: MAE %.2f, RMSE %.2f on %d faces", card["metrics"]["test"]["mae"],
             card["metrics"]["test"]["rmse"], len(y_test))
    return card


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """Cosine decay to 2% of ``config.lr``, after a linear warm-up of ``config.warmup_epochs``."""
    total_steps = max(1, config.epochs * steps_per_epoch)
    warmup_steps = min(int(config.warmup_epochs * steps_per_epoch), total_steps - 1)
    if warmup_steps <= 0:
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=total_steps, alpha=0.02)
    return keras.optimizers.schedules.CosineDecay(
        config.lr / 20, decay_steps=total_steps - warmup_steps, alpha=0.02,
        warmup_target=config.lr, warmup_steps=warmup_steps,
    )


def _load_trained_weights(model: keras.Model, path: Path) -> None:
    """Copy a trained model's weights into ``model``; both must have the same layers (the input
    size may differ: both networks end in global pooling)."""
    trained = AgeModel.load(path, runtime="keras").keras_model  # float32 even when stored in float16
    if [w.shape for w in trained.weights] != [w.shape for w in model.weights]:
        raise ModelError(f"{path} has other layers than {model.name}; cannot start from it")
    model.set_weights(trained.get_weights())
    log.info("starting from the weights of %s", path)


def _strategy_scope(strategy: str | None):
    """A tf.distribute scope for ``--strategy mirrored``; a no-op context otherwise."""
    import contextlib

    if strategy in (None, "none"):
        return contextlib.nullcontext()
    if strategy != "mirrored":
        raise ValueError(f"unknown strategy {strategy!r}; use 'mirrored'")
    if keras.backend.backend() != "tensorflow":
        raise ValueError("--strategy mirrored needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    import tensorflow as tf

    return tf.distribute.MirroredStrategy().scope()


# Models whose float32 weights exceed this are stored in float16 (GitHub-friendly files).
FLOAT16_ABOVE_BYTES = 45_000_000


def _save_for_inference(model: keras.Model, config: TrainConfig, path: Path) -> bool:
    """Save a fresh, uncompiled copy (a file with optimizer state does not load across backends).

    Returns True when the weights were stored in float16 to keep the file small.
    """
    from core.float16 import convert

    clean = build_model(config.arch, config.img_size, "none")
    clean.set_weights(model.get_weights())
    half = clean.count_params() * 4 > FLOAT16_ABOVE_BYTES
    if half:
        clean = convert(clean, "float16")
    with atomic_path(path) as tmp:
        clean.save(tmp)
    return half


def _write_plots(config: TrainConfig, history: dict, y_true, y_pred, by_age: dict) -> None:
    prefix = PLOT_PREFIX.get(config.arch, config.arch)
    label = {"cnn": "CNN", "resnet50": "ResNet50"}.get(config.arch, config.arch)
    plot_training(history, f"{label}: training and validation loss", config.assets / f"{prefix}_training_plot.png")
    if len(y_true):
        plot_predictions(y_true, y_pred, f"{label}: predicted vs actual age (test split)",
                         config.assets / f"{prefix}_prediction_plot.png")
        plot_error_by_band(by_age, f"{label}: MAE by age band (test split)",
                           config.assets / f"{prefix}_error_by_age.png")


def _read_history(path: Path) -> dict[str, list[float]]:
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {}) if key != "epoch"}


def _best_val_mae(path: Path) -> float:
    values = _read_history(path).get("val_mae", [])
    return min(values) if values else math.inf


def earlier_training_stages(init_from: Path | None) -> list[dict]:
    """How the model a run starts from was trained, read from its card: its own earlier stages,
    then its run (initialisation, epochs, time, learning rate, metrics)."""
    card_path = Path(init_from).with_suffix(".json") if init_from is not None else None
    if card_path is None or not card_path.is_file():
        return []
    card = json.loads(card_path.read_text())
    training = card.get("training", {})
    stage = {"weights_init": card.get("weights_init"), "weights_note": card.get("weights_note"),
             "epochs_run": training.get("epochs_run"), "seconds": training.get("seconds"),
             "lr": training.get("config", {}).get("lr"), "created": card.get("created"),
             "val_mae": card.get("metrics", {}).get("val", {}).get("mae"),
             "test_mae": card.get("metrics", {}).get("test", {}).get("mae")}
    return card.get("earlier_stages", []) + [stage]


def _weights_note(config: TrainConfig, weights: str) -> str:
    if config.init_from is not None:
        return (f"initialised from the trained model {Path(config.init_from).name}; how that was trained is "
                "under earlier_stages")
    if config.arch != "resnet50":
        return "trained from scratch (random initialisation)"
    if weights == "imagenet":
        return "ImageNet-pretrained ResNet50 backbone, fine-tuned on UTKFace"
    if config.weights == "imagenet":
        return "ImageNet weights were requested but not reachable (no network, no Keras cache): trained from scratch"
    return "trained from scratch (random initialisation)"


def _hardware() -> dict:
    info = {"machine": platform.machine(), "processor": platform.processor() or "unknown",
            "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        import tensorflow as tf

        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except ImportError:
        info["gpus"] = "unknown (TensorFlow not installed)"
    return info


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (cards stay valid in any clone)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value

