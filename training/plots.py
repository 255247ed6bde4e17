"""Figures of a training run: loss curves, predicted vs actual age, error by age band."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never opens a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from agecam.core.atomic import atomic_path  # noqa: E402
from agecam.core.model_card import figure_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_training(history: dict[str, list[float]], title: str, path: Path) -> Path:
    """Training and validation loss (MAE, years) per epoch."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="training loss")
    if history.get("val_loss"):
        ax.plot(epochs, history["val_loss"], label="validation loss")
        best = int(np.argmin(history["val_loss"]))
        ax.scatter([epochs[best]], [history["val_loss"][best]], color="C3", zorder=3, label="best checkpoint")
    ax.set(xlabel="epoch", ylabel="loss (MAE, years)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_stages(stages: list[dict], final: dict, title: str, path: Path) -> Path:
    """A model trained in stages whose epoch losses were not kept: its validation loss (MAE, years) and
    test MAE at the end of each stage, against the epochs trained so far. ``stages``: the card's
    ``earlier_stages``; ``final``: the last stage's ``{"epochs", "val_mae", "test_mae"}``."""
    runs = [(s.get("epochs_run", 0), s.get("val_mae"), s.get("test_mae")) for s in stages]
    runs.append((final["epochs"], final["val_mae"], final["test_mae"]))
    epochs = np.cumsum([r[0] for r in runs])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(epochs, [r[1] for r in runs], marker="o", label="validation loss (MAE)")
    ax.plot(epochs, [r[2] for r in runs], marker="s", linestyle="--", label="test MAE")
    for i, (x, (_, val, _)) in enumerate(zip(epochs, runs), start=1):
        ax.annotate(f"stage {i}", (x, val), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    ax.set(xlabel="epochs trained (end of each stage)", ylabel="MAE (years)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.text(0.01, -0.04, "Each stage is measured on the splits of its own run (an early stage may have used "
             "another data folder),\nso a step between stages is not only training.", fontsize=7, va="top")
    return _save(fig, path)


def plot_predictions(y_true, y_pred, title: str, path: Path) -> Path:
    """Scatter of predicted against true age on the test split, with the identity line."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(y_true, y_pred, s=8, alpha=0.45)
    top = float(max(y_true.max(initial=1), y_pred.max(initial=1))) + 5
    ax.plot([0, top], [0, top], color="black", linewidth=1, label="perfect prediction")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="actual age", ylabel="predicted age", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_error_by_band(by_age: dict[str, dict], title: str, path: Path) -> Path:
    """Bar chart of MAE per age band, with each band's face count on its bar."""
    bands = list(by_age)
    maes = [by_age[b]["mae"] for b in bands]
    fig, ax = plt.subplots(figsize=(7, 4))
    # Placed by position and labelled: band names such as "0-9" are labels, not numbers to plot.
    bars = ax.bar(range(len(bands)), maes, color="C1", tick_label=bands)
    for bar, band in zip(bars, bands):
        ax.annotate(f"n={by_age[band]['n']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set(xlabel="true age band", ylabel="MAE (years)", title=title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def write_model_figures(architecture: str, folder: Path, y_true, y_pred, by_age: dict,
                        history: dict[str, list[float]] | None = None, subset: str = "test split",
                        stages: tuple[list[dict], dict] | None = None) -> list[Path]:
    """``PREFIX_prediction_plot.png`` and ``PREFIX_error_by_age.png`` of an evaluation on ``subset`` in
    ``folder`` and, given the run's loss ``history`` (or, for a model trained in stages whose epoch
    losses were not kept, its ``stages``: ``(earlier_stages, final)`` as :func:`plot_stages` takes
    them), ``PREFIX_training_plot.png``; the paths written.

    Training writes all three; ``agecam evaluate --figures`` redraws them for a model already shipped."""
    label = {"cnn": "CNN", "resnet50": "ResNet50", "resnet10": "ResNet-10"}.get(architecture, architecture)
    written = []
    if history and history.get("loss"):
        written.append(plot_training(history, f"{label}: training and validation loss",
                                     figure_path(architecture, "training_plot", folder)))
    elif stages and stages[0]:
        written.append(plot_stages(*stages, f"{label}: loss after each training stage",
                                   figure_path(architecture, "training_plot", folder)))
    if len(y_true):
        written.append(plot_predictions(y_true, y_pred, f"{label}: predicted vs actual age ({subset})",
                                        figure_path(architecture, "prediction_plot", folder)))
        written.append(plot_error_by_band(by_age, f"{label}: MAE by age band ({subset})",
                                          figure_path(architecture, "error_by_age", folder)))
    return written
