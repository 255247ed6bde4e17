"""The rule for the tools' default model, read from the model cards and the saved benchmarks:
among the models that keep real-time speed on the runtime the tools use, the lowest mean of the
UTKFace test MAE and a figure on faces of another source through the whole pipeline
(``agecam evaluate-photos ... --record``): the distance to the age group on
:data:`CROSS_DATASET_GROUPS` when every candidate has it (a model fine-tuned from a network of
unknown training data cannot be judged on FG-NET, which that network may have seen), else the MAE on
:data:`CROSS_DATASET`; when a candidate has neither, on the test MAE alone.

``python -m agecam.training.evaluation.report`` applies it (:func:`mark_default`) and docs/models.md states
the numbers behind the choice; the tools read the card's ``"default"`` flag.
"""

from __future__ import annotations

from pathlib import Path

from .age_model import combined_runtime, models_dir
from .estimator import EstimatorConfig
from .model_card import benchmark_runtime, write_card

# Real time as issue #5 defines it: headless with encoding, at the tools' default refresh rate.
REALTIME_FPS = {3: 30.0, 5: 20.0}
REALTIME_LATENCY_P95_MS = 50.0  # added camera-to-display latency at 3 faces
DEFAULT_REFRESH_EVERY = EstimatorConfig().refresh_every
CROSS_DATASET = "fgnet-dev"  # the card's cross_dataset entry the rule reads (../shared/data/fgnet-dev)
# Faces of a source no candidate trained on, even one fine-tuned from a network of unknown training
# data (the dlib-models age network very likely saw FG-NET): FairFace, labelled by age group (issue #45).
CROSS_DATASET_GROUPS = "fairface-dev"


def tool_runtimes(cards: dict[str, dict], folder: Path | None = None) -> dict[str, str]:
    """The runtime ``--runtime auto`` gives each shipped model: ``int8`` where its parity record
    holds, else ``onnx`` where a matching export is there, else ``keras``; an ensemble's is its
    members' (see :class:`core.age_model.EnsembleRunner`)."""
    from .onnx_runner import matching_int8_runner, matching_onnx_runner

    def runtime_of(path: Path) -> str:
        if matching_int8_runner(path, cards.get(path.stem, {}))[0]:
            return "int8"
        return "onnx" if matching_onnx_runner(path)[0] else "keras"

    folder = Path(folder or models_dir())
    # Each trained model checked once (loading its export and hashing its file), ensembles reuse it.
    trained = {path.stem: runtime_of(path) for path in folder.glob("*.keras")}
    return {name: combined_runtime(trained.get(m, "keras") for m in card["members"]) if "members" in card
            else trained.get(name, "keras") for name, card in cards.items()}


def realtime_runs(results: list[dict], runtimes: dict[str, str] | None = None) -> dict[str, dict]:
    """Each model's saved benchmark at the default refresh rate, on the runtime the tools use
    for it (``runtimes``; any runtime when not given)."""
    runtimes = runtimes or {}
    return {r["model"]: r for r in results if r["refresh_every"] == DEFAULT_REFRESH_EVERY
            and benchmark_runtime(r) == runtimes.get(r["model"], benchmark_runtime(r))}


def fps_by_faces(run: dict) -> dict[int, float]:
    return {row["faces"]: row["fps"] for row in run["pipeline"]}


def live_p95_ms(run: dict) -> float:
    return run["live_latency"]["capture_to_output_ms"]["p95_ms"]


def is_realtime(run: dict) -> bool:
    """Issue #5's targets: :data:`REALTIME_FPS` per face count, live latency p95 within budget."""
    fps = fps_by_faces(run)
    return (all(fps.get(n, 0.0) >= target for n, target in REALTIME_FPS.items())
            and live_p95_ms(run) <= REALTIME_LATENCY_P95_MS)


def cross_dataset_mae(card: dict) -> float | None:
    """The card's MAE on :data:`CROSS_DATASET` through the pipeline, or None without a record."""
    return card.get("cross_dataset", {}).get(CROSS_DATASET, {}).get("mae")


def group_distance(card: dict) -> float | None:
    """The card's mean distance to the age group on :data:`CROSS_DATASET_GROUPS`, or None without a record."""
    return card.get("cross_dataset", {}).get(CROSS_DATASET_GROUPS, {}).get("groups", {}).get("distance")


def selection_basis(cards: dict[str, dict], names: list[str]) -> str:
    """Which figure the rule adds to the test MAE for ``names``: ``"groups"`` (the distance to the age
    group on :data:`CROSS_DATASET_GROUPS`) when every one of them has that record, else ``"cross"``
    (:data:`CROSS_DATASET` MAE) when every one has that, else ``"test"`` (the test MAE alone)."""
    if names and all(group_distance(cards[name]) is not None for name in names):
        return "groups"
    if all(cross_dataset_mae(cards[name]) is not None for name in names):
        return "cross"
    return "test"


def selection_scores(cards: dict[str, dict], names: list[str]) -> dict[str, float]:
    """What the rule minimises for ``names``: the test MAE, averaged with the figure of
    :func:`selection_basis` when there is one."""
    basis = selection_basis(cards, names)
    other = {"groups": group_distance, "cross": cross_dataset_mae}.get(basis)
    return {name: (cards[name]["metrics"]["test"]["mae"] + other(cards[name])) / 2 if other
            else cards[name]["metrics"]["test"]["mae"] for name in names}


def pick_default(cards: dict[str, dict], results: list[dict], runtimes: dict[str, str] | None = None) -> str | None:
    """The rule for the tools' default model: the lowest :func:`selection_scores` among the real-time models.

    Real time (:func:`is_realtime`) is judged on a saved benchmark on the runtime the tools
    use; a model without one is not known to be real-time and is not picked.
    """
    runs = realtime_runs(results, runtimes)
    fast = [name for name in cards if name in runs and is_realtime(runs[name])]
    scores = selection_scores(cards, fast)
    return min(fast, key=scores.get) if fast else None


def mark_default(cards: dict[str, dict], results: list[dict], folder: Path | None = None,
                 runtimes: dict[str, str] | None = None) -> str | None:
    """Set ``"default": true`` on the card :func:`pick_default` chooses (and only on it)."""
    chosen = pick_default(cards, results, runtimes)
    folder = Path(folder or models_dir())
    for name, card in cards.items():
        if bool(card.get("default")) != (name == chosen):
            card["default"] = name == chosen
            write_card(folder / f"{name}.json", card)
    return chosen
