"""Write the docs' model and performance tables from the model cards and saved benchmarks,
so no metric is ever typed by hand.

``python -m agecam.training.evaluation.report`` replaces the text between each pair of markers below (and those of
``training.evaluation.assurance_tables``) in each page of :data:`GENERATED_PAGES` (or the pages given).

Long (about 560 lines) as a list of tables: one small function per generated table, each reading
its card fields or saved benchmark; they share the loaders and the page rewriting at the end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agecam.core.atomic import write_text_atomic
from agecam.core.default_model import (CROSS_DATASET, CROSS_DATASET_GROUPS, REALTIME_FPS, REALTIME_LATENCY_P95_MS,
                                       fps_by_faces, is_realtime, live_p95_ms, mark_default, pick_default,
                                       realtime_runs, selection_basis, selection_scores, tool_runtimes)
from agecam.core.age_model import load_cards
from agecam.core.hardware import machine_text
from agecam.core.model_card import ASSETS_DIR, benchmark_runtime, load_benchmarks
from .assurance_tables import sections as assurance_sections

BEGIN, END = "<!-- models-table:begin -->", "<!-- models-table:end -->"
PERF_BEGIN, PERF_END = "<!-- performance-table:begin -->", "<!-- performance-table:end -->"
BANDS_BEGIN, BANDS_END = "<!-- age-bands-table:begin -->", "<!-- age-bands-table:end -->"
DEFAULT_BEGIN, DEFAULT_END = "<!-- default-model:begin -->", "<!-- default-model:end -->"
SIZE_BEGIN, SIZE_END = "<!-- face-size-table:begin -->", "<!-- face-size-table:end -->"
FIELD_BEGIN, FIELD_END = "<!-- field-test-table:begin -->", "<!-- field-test-table:end -->"
COST_BEGIN, COST_END = "<!-- small-faces-cost:begin -->", "<!-- small-faces-cost:end -->"
THROUGHPUT_BEGIN, THROUGHPUT_END = "<!-- model-throughput:begin -->", "<!-- model-throughput:end -->"
INT8_BEGIN, INT8_END = "<!-- int8-parity:begin -->", "<!-- int8-parity:end -->"
BATCH_BEGIN, BATCH_END = "<!-- batch-throughput:begin -->", "<!-- batch-throughput:end -->"
ROBUST_BEGIN, ROBUST_END = "<!-- robustness-table:begin -->", "<!-- robustness-table:end -->"
CROSS_BEGIN, CROSS_END = "<!-- cross-dataset-table:begin -->", "<!-- cross-dataset-table:end -->"
GROUPS_BEGIN, GROUPS_END = "<!-- age-group-table:begin -->", "<!-- age-group-table:end -->"
GATE_BEGIN, GATE_END = "<!-- age-gate-table:begin -->", "<!-- age-gate-table:end -->"
TRACKS_BEGIN, TRACKS_END = "<!-- track-ages-table:begin -->", "<!-- track-ages-table:end -->"
STILLS_BEGIN, STILLS_END = "<!-- stills-throughput:begin -->", "<!-- stills-throughput:end -->"
SERVE_BEGIN, SERVE_END = "<!-- serve-throughput:begin -->", "<!-- serve-throughput:end -->"
FIELD_TEST = "field-test.json"  # written by `agecam field-test --save assets/field-test.json`
SERVE_BENCHMARK = "serve-benchmark.json"  # written by `agecam benchmark --serve DIR --save assets/serve-benchmark.json`
STILLS_THROUGHPUT = "stills-benchmark.json"  # written by `agecam benchmark --stills DIR --save assets/stills-benchmark.json`
BATCH_THROUGHPUT = "batch-throughput.json"  # written by `agecam benchmark --batch --save assets/batch-throughput.json`
# Issue #13's targets: per case, the worst face's main-track share and the most tracks a face may get.
COVERAGE_TARGETS = {"3 faces of 120 px, 640x480": (0.98, 1), "5 faces of 80 px, 640x480": (0.95, 2),
                    # issue #22: ids that survive crossings
                    "4 faces of 100 px, 640x480, crossing in pairs": (0.95, 2),
                    # issue #50: one track per face through repeated crossings
                    "4 faces of 130 px, 640x480, crossing in pairs, a pass every 5 s": (0.97, 1),
                    "4 faces of 140 px, 640x480, crossing in pairs, a pass every 5 s": (0.97, 1)}
# Issue #22's targets for track ages on generated tracks (agecam track-test).
TRACK_MAE_GAIN, TRACK_COVERAGE, TRACK_MOVEMENT = 1.0, (0.78, 0.85), 3.0
SHOWN_MOVEMENT = 5.0  # issue #50: the single age shown on a 2 s track of a 24-40 px face moves by at most this
RECALL_TARGETS = {"40-63": 0.90, "40-200": 0.95}
ASSETS = ASSETS_DIR
STAGE_COLUMNS = ("detect", "crop", "infer", "track", "draw", "encode")
SEED_APP = {"resnet50": (6.72, 9.68), "cnn": (8.58, 11.67)}  # MAE, RMSE published by the seed app


def models_table(cards: dict[str, dict]) -> str:
    """Markdown table of test-split metrics per shipped model."""
    if not cards:
        return "_No trained model is shipped yet: train one with `agecam train` (see Training)._"
    lines = ["| model | head | input | init | test n | MAE | MSE | RMSE | crop-part1 test n | crop-part1 MAE "
             "| target MAE (crop-part1) | 80% range coverage | seed app MAE / RMSE | epochs | training time |",
             "|---" * 15 + "|"]
    for name, card in cards.items():
        test, training = card["metrics"]["test"], card.get("training")  # an ensemble is not trained itself
        seed = SEED_APP.get(card["architecture"])
        # A model trained further (--init-from) lists its earlier runs: show the whole history.
        stages = card.get("earlier_stages", [])
        init = stages[0]["weights_init"] if stages else card["weights_init"]
        epochs = " + ".join(str(s["epochs_run"]) for s in [*stages, training]) if training else "-"
        time = (f"{sum(s['seconds'] for s in [*stages, training]) / 60:.0f} min on "
                f"{training['hardware'].get('cpu_count')} CPU cores" if training else "-")
        part1 = card["metrics"].get("test_part1")
        part1_n, part1_mae = (part1["n"], f"{part1['mae']:.2f}") if part1 else ("-", "-")
        coverage = card.get("age_range", {}).get("test", {}).get("coverage")
        lines.append(
            f"| `{name}`{' (default)' if card.get('default') else ''} "
            f"| {card.get('head', 'mean of members' if 'members' in card else 'regression')} "
            f"| {card['input_size']} px | {init} | {test['n']} | {test['mae']:.2f} | {test['mse']:.1f} "
            f"| {test['rmse']:.2f} | {part1_n} | {part1_mae} "
            f"| {_target_cell(card.get('target'))} | {f'{coverage:.1%}' if coverage is not None else '-'} "
            f"| {f'{seed[0]} / {seed[1]}' if seed else '-'} | {epochs} | {time} |"
        )
    return "\n".join(lines)


def face_size_table(cards: dict[str, dict]) -> str:
    """Markdown: MAE (bias) per effective face width of the degraded evaluation, per model."""
    cards = {name: card for name, card in cards.items() if card.get("degraded")}
    if not cards:
        return "_No model has a degraded evaluation yet: run `agecam calibrate` (see Training)._"
    which = {name: "test_part1" if "test_part1" in card["degraded"] else "test" for name, card in cards.items()}
    widths = sorted({int(w) for name, card in cards.items() for w in card["degraded"][which[name]]})
    lines = ["| face width (JPEG q50) | " + " | ".join(f"`{name}` MAE (bias)" for name in cards) + " |",
             "|---" * (1 + len(cards)) + "|"]
    clean = [card["metrics"].get(which[name], card["metrics"]["test"]) for name, card in cards.items()]
    lines.append("| clean crop | " + " | ".join(f"{m['mae']:.2f} ({m.get('bias', float('nan')):+.2f})" for m in clean) + " |")
    for width in widths:
        cells = [card["degraded"][which[name]].get(str(width)) for name, card in cards.items()]
        lines.append(f"| {width} px | " + " | ".join(f"{c['mae']:.2f} ({c['bias']:+.2f})" if c else "-" for c in cells) + " |")
    return "\n".join(lines)


def robustness_table(cards: dict[str, dict]) -> str:
    """Markdown: MAE (bias) per perturbation of the robustness suite, per model; a cell beyond the
    targets (training.evaluation.robustness) is marked."""
    cards = {name: card for name, card in cards.items() if card.get("robustness", {}).get("test")}
    if not cards:
        return "_No model has a robustness record yet: run `agecam calibrate` (see Training)._"
    names = list(next(iter(cards.values()))["robustness"]["test"])
    faces = sorted({card["robustness"].get("faces", 0) for card in cards.values()})
    lines = [f"| perturbation ({'/'.join(map(str, faces))} UTKFace test faces) | "
             + " | ".join(f"`{name}` MAE (bias)" for name in cards) + " |",
             "|---" * (1 + len(cards)) + "|"]
    for perturbation in names:
        cells = [card["robustness"]["test"].get(perturbation) for card in cards.values()]
        lines.append(f"| {perturbation} | " + " | ".join(
            f"{c['mae']:.2f} ({c['bias']:+.2f}){'' if c['met'] else ' ✗'}" if c else "-" for c in cells) + " |")
    met = {name: sum(c["met"] for c in card["robustness"]["test"].values()) for name, card in cards.items()}
    lines.append("| within the targets | " + " | ".join(f"{met[name]} of {len(card['robustness']['test'])}"
                                                       for name, card in cards.items()) + " |")
    return "\n".join(lines)


def cross_dataset_table(cards: dict[str, dict]) -> str:
    """Markdown: each model's cross-dataset record(s) through the pipeline, overall and per age band."""
    rows = [(name, source, record) for name, card in cards.items()
            for source, record in card.get("cross_dataset", {}).items() if "mae" in record]
    if not rows:
        return (f"_No cross-dataset record yet: run `agecam evaluate-photos ../shared/data/{CROSS_DATASET} "
                "--model NAME --record`._")
    bands = sorted({band for _, _, record in rows for band in record["by_age"]}, key=lambda b: int(b.rstrip("+").split("-")[0]))
    lines = ["| model | photos | found | MAE | bias | 80% range coverage | MAE per person (mean) | s per photo | "
             "greyscale photos MAE (bias) | " + " | ".join(f"{band} MAE (bias)" for band in bands) + " |",
             "|---" * (9 + len(bands)) + "|"]
    for name, source, record in rows:
        per_person = record.get("mae_per_person", {}).get("mean")
        coverage = record.get("range_coverage")
        cells = [record["by_age"].get(band) for band in bands]
        lines.append(f"| `{name}` on {source} | {record['photos']} | {record['found_rate']:.1%} | {record['mae']:.2f} "
                     f"| {record['bias']:+.2f} | {'-' if coverage is None else f'{coverage:.1%}'} "
                     f"| {'-' if per_person is None else f'{per_person:.2f}'} "
                     f"| {_seconds_cell(record.get('seconds_per_photo'))} | {_greyscale_cell(record)} | "
                     + " | ".join(f"{c['mae']:.2f} ({c['bias']:+.1f})" if c else "-" for c in cells) + " |")
    return "\n".join(lines)


def age_group_table(cards: dict[str, dict]) -> str:
    """Markdown: each model's records on photos labelled by age group (FairFace's ``fairface-dev``):
    share inside the group, distance to it, per group and for children and the over-60s."""
    rows = [(name, source, record["groups"]) for name, card in cards.items()
            for source, record in card.get("cross_dataset", {}).items() if "groups" in record]
    if not rows:
        return (f"_No age-group record yet: run `agecam evaluate-photos ../shared/data/{CROSS_DATASET_GROUPS} "
                "--model NAME --record`._")
    groups = list(dict.fromkeys(g for _, _, record in rows for g in record["by_group"]))
    lines = ["| model | photos | inside the group | distance to the group (signed) | children 0-9 distance | "
             "over-60s distance (signed) | " + " | ".join(f"{g}: inside, median age" for g in groups) + " |",
             "|---" * (6 + len(groups)) + "|"]
    for name, source, record in rows:
        kids, old = record.get("children_0_9"), record.get("over_60")
        kids_cell = "-" if not kids else f"{kids['distance']:.2f}"
        old_cell = "-" if not old else f"{old['distance']:.2f} ({old['signed_distance']:+.2f})"
        cells = [record["by_group"].get(g) for g in groups]
        lines.append(f"| `{name}` on {source} | {record['n']} | {record['inside']:.1%} | {record['distance']:.2f} "
                     f"({record['signed_distance']:+.2f}) | {kids_cell} | {old_cell} | "
                     + " | ".join(f"{c['inside']:.0%}, {c['median_predicted']:.0f}" if c else "-" for c in cells) + " |")
    return "\n".join(lines)


def _greyscale_cell(record: dict) -> str:
    grey = record.get("by_colour", {}).get("greyscale")
    return f"{grey['mae']:.2f} ({grey['bias']:+.1f}), n={grey['n']}" if grey else "-"


def _seconds_cell(seconds) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def age_gate_table(cards: dict[str, dict]) -> str:
    """Markdown: per model, data set and gate, how the age gate decided (``core.age_gate``): minors
    called over, clear adults (5+ years over the gate) called over, all faces sent to check. The UTKFace
    rows come from ``agecam calibrate`` (``age_range.gate``), the generated tracks from ``agecam gate-test
    --record`` (``age_range.gate.tracks``), the cross-dataset ones from ``agecam evaluate-photos --record``
    (``cross_dataset.*.age_gate``)."""
    rows = []
    for name, card in cards.items():
        gate = card.get("age_range", {}).get("gate", {})
        sets = [(f"UTKFace {label}", gate.get(key)) for key, label in (("test", "test"), ("test_part1", "crop-part1 test"))]
        tracks = gate.get("tracks")
        if tracks:
            sets.append((f"generated tracks of UTKFace test faces, {tracks['views']} views each", tracks["gates"]))
        sets += [(source, record.get("age_gate")) for source, record in card.get("cross_dataset", {}).items()]
        for label, by_gate in sets:
            for threshold, outcome in sorted((by_gate or {}).items(), key=lambda item: int(item[0])):
                rows.append((name, label, outcome))
    if not rows:
        return ("_No age-gate record yet: run `agecam calibrate --model NAME ...` and "
                f"`agecam evaluate-photos ../shared/data/{CROSS_DATASET} --model NAME --record`._")

    def share(value):
        return "-" if value is None else f"{value:.1%}"

    lines = ["| model | faces | gate | under-age faces | under-age called over | adults 5+ over called over | "
             "sent to check |", "|---" * 7 + "|"]
    for name, label, o in rows:
        lines.append(f"| `{name}` | {label} ({o['faces']}) | {o['gate']} | {o['under_age']} | "
                     f"{share(o['under_age_called_over'])} | {share(o['adults_called_over'])} | "
                     f"{share(o['sent_to_check'])} |")
    return "\n".join(lines)


def track_ages_table(cards: dict[str, dict]) -> str:
    """Markdown: per model, track ages on generated tracks (``agecam track-test --record``, card
    ``tracks``): one view's MAE against the fused track age's, the range's coverage, how much the
    shown age moves after 2 s, with the old last-15 mean beside them and issue #22's targets."""
    rows = [(name, card["tracks"]) for name, card in cards.items() if isinstance(card.get("tracks"), dict)
            and "test" in card["tracks"]]
    if not rows:
        return "_Not measured yet: run `agecam track-test --model NAME --data ../shared/data/utkface --record`._"
    lo, hi = TRACK_COVERAGE
    lines = ["| model | test tracks (estimates each) | MAE, one view | MAE, fused track | MAE, plain mean of the track | "
             "MAE, last-15 mean | 80% range coverage | by estimates behind it: 1 / 2-4 / 5-19 / 20+ | "
             "shown age moves after 2 s: mean / p90 | last-15 mean moves | rho | targets |", "|---" * 12 + "|"]
    for name, record in rows:
        t, fit = record["test"], record["range"]
        gain = t["view_mae"] - t["track_mae"]
        move, old = t["shown_age_movement_after_2s"], t["old_shown_age_movement_after_2s"]
        by_views = " / ".join(f"{t['range_coverage_by_views'].get(b, float('nan')):.0%}" for b in ("1", "2-4", "5-19", "20+"))
        verdicts = [f"MAE gain ≥ {TRACK_MAE_GAIN:.1f}: {'met' if gain >= TRACK_MAE_GAIN else f'missed ({gain:+.2f})'}",
                    f"coverage {lo:.2f}-{hi:.2f}: {'met' if lo <= t['range_coverage'] <= hi else 'missed'}",
                    f"moves ≤ {TRACK_MOVEMENT:.0f}: {'met' if move['p90'] <= TRACK_MOVEMENT else 'missed'} (p90)"]
        lines.append(f"| `{name}` | {t['tracks']} ({record['config']['views']}) | {t['view_mae']:.2f} | {t['track_mae']:.2f} | "
                     f"{t['unweighted_mean_mae']:.2f} | {t['old_track_mae']:.2f} | {t['range_coverage']:.1%} | {by_views} | "
                     f"{move['mean']:.2f} / {move['p90']:.2f} | {old['mean']:.2f} / {old['p90']:.2f} | {fit['rho']:.2f} | "
                     + "; ".join(verdicts) + " |")
    shown = [(name, record) for name, record in rows if "shown_age" in record and "shown_age" in record["test"]]
    if shown:
        lines += ["", "The shown age (`core.fusion.ShownAgeRule`): the single age goes on screen once the track's range is "
                  "this narrow, and stays; before that the range is shown. How far it then moves, from when it is first "
                  "shown, on the same test tracks: whole, cut to their first 2 s, and the first 2 s of faces 24-40 px wide "
                  "(\"show it\": the share of tracks that get to the single age; the others show their range throughout).", "",
                  "| model | shown once the range is at most | whole tracks: show it, moves p95 / max | first 2 s: show it, "
                  "moves p95 / max | first 2 s, faces 24-40 px: tracks, show it, moves p95 / max, range on screen | "
                  f"target: moves ≤ {SHOWN_MOVEMENT:.0f} on 2 s tracks of 24-40 px faces |", "|---" * 6 + "|"]
        for name, record in shown:
            rule, groups = record["shown_age"], record["test"]["shown_age"]

            def cell(group: dict) -> str:
                moves = "-" if group["moves_max"] is None else f"{group['moves_p95']:.1f} / {group['moves_max']:.1f}"
                return f"{group['showing_the_age']:.0%}, {moves}"

            small = groups["first_2s_faces_24_40px"]
            worst = small["moves_max"]
            verdict = "-" if worst is None else ("met" if worst <= SHOWN_MOVEMENT else f"missed (max {worst:.1f})")
            lines.append(f"| `{name}` | {rule['max_width']:.1f} years | {cell(groups['whole'])} | {cell(groups['first_2s'])} | "
                         f"{small['tracks']}, {cell(small)}, {small['range_shown_share']:.0%} | {verdict} |")
    return "\n".join(lines)


def _target_cell(target: dict | None) -> str:
    if not target:
        return "-"
    verdict = "met" if target["met"] else f"missed by {target['missed_by']:.2f}"
    return f"≤ {target['test_mae_at_most']:.1f}: {verdict}"


def report_inputs(folder: Path | None = None, assets: Path = ASSETS) -> tuple[dict, list, dict]:
    """(cards, saved benchmarks, the tools' runtime per model): everything the report reads."""
    cards = load_cards(folder)
    return cards, load_benchmarks(assets), tool_runtimes(cards, folder)


def performance_table(results: list[dict]) -> str:
    """Markdown: fps per face count and per-stage median latency of each saved benchmark run; a run
    that also ran the peer on its clips is followed by the peer's row and gives the ratio."""
    if not results:
        return "_No benchmark saved yet: run `agecam benchmark --save assets/benchmark-NAME.json`._"
    counts = sorted({row["faces"] for r in results for row in r["pipeline"]})
    lines = ["| model | runtime | refresh every | " + " | ".join(f"fps, {n} face{'s' * (n > 1)}" for n in counts)
             + " | " + " | ".join(f"{s} ms" for s in STAGE_COLUMNS) + " | live latency p95 | machine | command |",
             "|---" * (5 + len(counts) + len(STAGE_COLUMNS)) + "|---|"]
    for r in results:
        rows = {row["faces"]: row for row in r["pipeline"]}
        ref = rows.get(3) or next(iter(rows.values()))
        fps = [_fps_cell(rows[n]) if n in rows else "-" for n in counts]
        stages = [f"{ref['stages'][s]['median_ms']:.1f}" if ref["stages"][s]["median_ms"] is not None else "-"
                  for s in STAGE_COLUMNS]
        live = r["live_latency"]["capture_to_output_ms"]["p95_ms"]
        command = r.get("command", "agecam benchmark")
        lines.append(f"| `{r['model']}` | {benchmark_runtime(r)} | {r['refresh_every']} | " + " | ".join(fps) + " | " + " | ".join(stages)
                     + f" | {live:.0f} ms | {machine_text(r.get('machine'))} | `{command}` |")
        if r.get("peer"):
            peer = [f"{rows[n]['peer']['fps']:.1f}" if n in rows and "peer" in rows[n] else "-" for n in counts]
            lines.append(f"| peer: {r['peer']} (same clips, same run) | dlib HOG + ONNX | 1 | " + " | ".join(peer)
                         + " | " + " | ".join("-" for _ in STAGE_COLUMNS)
                         + f" | - | {machine_text(r.get('machine'))} | `{command}` |")
    return "\n".join(lines)


def _fps_cell(row: dict) -> str:
    """A run's fps, with its ratio to the peer's on the same clip when the peer was run."""
    ratio = row.get("peer_ratio")
    return f"{row['fps']:.1f} ({ratio:.2f}x peer)" if ratio else f"{row['fps']:.1f}"


def int8_table(cards: dict[str, dict]) -> str:
    """Markdown: each int8 model's parity with its float model on the test split (card ``int8``)."""
    rows = [(name, card["int8"]) for name, card in cards.items() if isinstance(card.get("int8"), dict)]
    if not rows:
        return "_No int8 model yet: run `agecam quantize --data ../shared/data/utkface`._"
    lines = ["  | model | calibration | int8 kernels | test faces | largest difference | p99 | mean | within the rule | "
             "MAE float -> int8 | parity | command |", "  " + "|---" * 11 + "|"]
    for name, record in rows:
        test, rule = record["test"], record["rule"]
        calibration = record["calibration"]
        lines.append(f"  | `{name}` | {calibration['calibration_faces']} faces, {calibration['method']} | "
                     f"{record.get('int8_kernels', 'not recorded')} | {test['n']} | "
                     f"{test['max_difference']:.2f} y | {test['p99_difference']:.2f} y | {test['mean_difference']:.2f} y | "
                     f"{test['within_rule']:.1%} within {rule['max_face_difference']:g} y | "
                     f"{test['mae_float']:.2f} -> {test['mae_int8']:.2f} | "
                     f"{'holds (used by auto)' if record['holds'] else 'missed (float used)'} | `{record['command']}` |")
    return "\n".join(lines)


def throughput_table(results: list[dict]) -> str:
    """Markdown: faces per second of each model alone, per runtime, at batch 1 and 8 (the models part
    of the saved benchmarks; a model's own benchmark run where it has one, else the first run that
    measured it)."""
    measured: dict[tuple[str, str], tuple[dict, dict]] = {}  # (model, runtime) -> (its figures, the run)
    for r in results:
        for m in r.get("models", []):
            key = (m["model"], m["runtime"])
            if key not in measured or (r["model"] == m["model"] and benchmark_runtime(r) == m["runtime"]):
                measured[key] = m, r
    if not measured:
        return "_Not measured yet: run `agecam benchmark --save assets/benchmark-NAME.json`._"
    lines = ["| model | runtime | input | faces/s, batch 1 | faces/s, batch 8 | machine | measured by |",
             "|---|---|---|---|---|---|---|"]
    for (name, runtime), (m, run) in sorted(measured.items(), key=lambda item: item[0]):
        lines.append(f"| `{name}` | {runtime} | {m['input_size']} px | {m['batch1_faces_per_s']:.0f} | "
                     f"{m.get('batch8_faces_per_s', float('nan')):.0f} | {machine_text(run.get('machine'))} | "
                     f"`{run.get('command', 'agecam benchmark')}` |")
    return "\n".join(lines)


def age_bands_table(cards: dict[str, dict]) -> str:
    """Markdown: test-split MAE per age band (rows) for each shipped model (columns)."""
    if not cards:
        return ""
    bands = list(next(iter(cards.values()))["metrics"]["test"]["by_age"])
    lines = ["| age band | test faces | " + " | ".join(f"`{name}` MAE" for name in cards) + " |",
             "|---" * (2 + len(cards)) + "|"]
    for band in bands:
        cells = [cards[name]["metrics"]["test"]["by_age"].get(band) for name in cards]
        n = next((c["n"] for c in cells if c), 0)
        lines.append(f"| {band} | {n} | " + " | ".join(f"{c['mae']:.2f}" if c else "-" for c in cells) + " |")
    return "\n".join(lines)


def default_model_text(cards: dict[str, dict], results: list[dict], runtimes: dict[str, str] | None = None) -> str:
    """The docs' sentence naming the default model and the numbers behind the choice."""
    name = pick_default(cards, results, runtimes)
    if name is None:
        return "_No shipped model has a saved benchmark at real-time speed yet._"
    run = realtime_runs(results, runtimes)[name]
    runs = realtime_runs(results, runtimes)
    fast = [other for other in cards if other in runs and is_realtime(runs[other])]
    scores = selection_scores(cards, fast)
    what = {"groups": f"the lowest mean of the UTKFace test MAE and the distance to the age group on "
                      f"{CROSS_DATASET_GROUPS} through the pipeline",
            "cross": f"the lowest mean of the UTKFace test MAE and the {CROSS_DATASET} MAE through the pipeline",
            "test": "the lowest test MAE"}[selection_basis(cards, fast)]
    others = [f"`{other}` {scores[other]:.2f}" for other in fast if other != name]
    fps = ", ".join(f"{fps_by_faces(run)[n]:.0f} fps at {n} faces" for n in sorted(REALTIME_FPS))
    targets = ", ".join(f"{target:.0f} fps at {n}" for n, target in sorted(REALTIME_FPS.items()))
    return (f"**Default model: `{name}`**, {what} ({scores[name]:.2f}"
            + (f"; {', '.join(others)}" if others else "") + ") among the models that keep real-time speed "
            f"({fps}, live latency p95 {live_p95_ms(run):.0f} ms, on {benchmark_runtime(run)}; the targets are "
            f"{targets} and {REALTIME_LATENCY_P95_MS:.0f} ms). Its card carries `\"default\": true`, which the tools read.")


def load_asset(name: str, folder: Path = ASSETS) -> dict | None:
    """A JSON result saved in the assets folder, or None when it has not been measured yet."""
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.is_file() else None


def load_field_test(folder: Path = ASSETS) -> dict | None:
    return load_asset(FIELD_TEST, folder)


def field_test_table(result: dict | None) -> str:
    """Track coverage per clip case (over its seeds) and still recall per face width, with targets."""
    if result is None:
        return f"_Not measured yet: run `agecam field-test --save assets/{FIELD_TEST}`._"
    cases: dict[str, list[dict]] = {}
    for clip in result["clips"]:
        cases.setdefault(clip["case"], []).append(clip)
    lines = ["| clip (600 frames unless noted) | clips | main track, worst face | main track, mean | tracks per face, most "
             "| people counted / there | fps (median) | target |", "|---|---|---|---|---|---|---|---|"]
    for case, clips in cases.items():
        coverage = [c for clip in clips for c in clip["main_track_coverage"]]
        tracks = max(t for clip in clips for t in clip["tracks_per_face"])
        fps = sorted(clip["fps"] for clip in clips)[len(clips) // 2]
        target = COVERAGE_TARGETS.get(case)
        verdict = "-"
        if target:
            met = min(coverage) >= target[0] and tracks <= target[1]
            verdict = f"≥ {target[0]:.0%}, ≤ {target[1]} track{'s' if target[1] > 1 else ''}: {'met' if met else 'missed'}"
        frames = clips[0]["frames"]
        label = case if frames == 600 else f"{case} ({frames} frames)"
        # Per clip, tracks of at least 1 s (what a people table counts) against the faces there.
        people = (" ".join(f"{clip['people']}/{clip['faces']}" for clip in clips)
                  if all("people" in clip for clip in clips) else "-")
        lines.append(f"| {label} | {len(clips)} | {min(coverage):.1%} | {sum(coverage) / len(coverage):.1%} | {tracks} "
                     f"| {people} | {fps:.1f} | {verdict} |")
    stills = result["stills"]
    lines += ["", "| still, face width | stills | found | target |", "|---|---|---|---|"]
    for band in ("40-63", "64-99", "100-200", "40-200"):
        if band in stills["recall"]:
            row = stills["recall"][band]
            target = RECALL_TARGETS.get(band)
            verdict = f"≥ {target:.0%}: {'met' if row['found'] >= target else 'missed'}" if target else "-"
            lines.append(f"| {band} px | {row['n']} | {row['found']:.1%} | {verdict} |")
    free = stills["face_free"]
    lines.append(f"| no face (a face reported) | {free['n']} | {free['with_a_face']:.1%} | ≤ 1%: "
                 f"{'met' if free['with_a_face'] <= 0.01 else 'missed'} |")
    lines += ["", f"Model `{result.get('model', '?')}` ({result.get('runtime', '?')}); "
                  f"{stills['seconds_per_still'] * 1000:.0f} ms per still with tiles. "
                  f"Command: `{result.get('command', 'agecam field-test')}`."]
    return "\n".join(lines)


def load_cost_runs(folder: Path = ASSETS) -> list[dict]:
    """Benchmarks saved as ``assets/detection-cost-*.json``: the small-face search on and off, 640x480 and 720p."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("detection-cost-*.json"))]


def detection_cost_table(results: list[dict]) -> str:
    """Markdown: fps and detection time with the small-face search on and off, per frame size."""
    if not results:
        return "_Not measured yet: run `agecam benchmark --save assets/detection-cost-NAME.json`._"
    counts = sorted({row["faces"] for r in results for row in r["pipeline"]})
    lines = ["| model | frame size | small faces | " + " | ".join(f"fps, {n} face{'s' * (n > 1)}" for n in counts)
             + " | detect ms (3 faces) | live latency p95 | command |",
             "|---|---|---|" + "---|" * len(counts) + "---|---|---|"]
    for r in sorted(results, key=lambda r: (r["model"], r["size"], not r.get("small_faces", False))):
        rows = {row["faces"]: row for row in r["pipeline"]}
        ref = rows.get(3) or next(iter(rows.values()))
        fps = [_fps_cell(rows[n]) if n in rows else "-" for n in counts]
        live = r["live_latency"]["capture_to_output_ms"]["p95_ms"]
        lines.append(f"| `{r['model']}` | {r['size']} | {'on' if r.get('small_faces') else 'off'} | " + " | ".join(fps)
                     + f" | {ref['stages']['detect']['median_ms']:.1f} | {live:.0f} ms | `{r.get('command', '')}` |")
    return "\n".join(lines)


def _machine_suffix(result: dict) -> str:
    return f" ({machine_text(result['machine'])})" if result.get("machine") else ""


def stills_throughput_table(result: dict | None) -> str:
    """Markdown: a folder of photos through ``agecam image`` and through the peer, each timed whole."""
    if result is None:
        return ("_Not measured yet: run `agecam benchmark --stills DIR --peer PYTHON --save "
                f"assets/{STILLS_THROUGHPUT}`._")
    lines = ["| tool | photos | wall time (start-up included) | photos/s | faces found | runs (s) |",
             "|---|---|---|---|---|---|"]
    for name, side in (("agecam (defaults, small-face search on)", result["agecam"]),
                       (result["peer"]["peer"] if result["peer"] else "peer", result["peer"])):
        if side:
            lines.append(f"| {name} | {result['photos']} | {side['seconds']:.1f} s | {side['photos_per_s']:.1f} | "
                         f"{side['faces']} | {', '.join(f'{s:.1f}' for s in side['seconds_runs'])} |")
    ratio = f"agecam {result['ratio']:.2f}x the peer's photos per second" if result["ratio"] else "peer not run"
    lines += ["", f"{ratio}; {result['photos']} photos of `{result['folder']}`, median of {result['repeats']} runs "
                  f"each, alternating; {result['cpu_cores']} CPU cores{_machine_suffix(result)}. Command: "
                  f"`{result.get('command', 'agecam benchmark --stills DIR')}`."]
    return "\n".join(lines)


def serve_table(result: dict | None) -> str:
    """Markdown: the load run of ``agecam serve`` per number of clients at once."""
    if result is None:
        return f"_Not measured yet: run `agecam benchmark --serve DIR --save assets/{SERVE_BENCHMARK}`._"
    lines = ["| clients at once | requests | answered 200 | busy (503) | errors | requests/s | p50 | p95 | p99 | "
             "server memory after |", "|---" * 10 + "|"]
    for row in result["rows"]:
        lines.append(f"| {row['concurrency']} | {row['requests']} | {row['ok']} | {row['busy']} | {row['errors']} | "
                     f"{row['requests_per_s']:.1f} | {row['p50_ms']:.0f} ms | {row['p95_ms']:.0f} ms | "
                     f"{row['p99_ms']:.0f} ms | {row.get('server_rss_mb', '-')} MB |")
    lines += ["", f"`agecam serve` with model `{result['model']}` and {result['workers']} workers on loopback; "
                  f"{result['photos']} photos of `{result['folder']}` (median {result['photo_kb_median']} kB) sent as "
                  f"raw bodies, round-robin; server memory at the start {result['server_rss_mb']['before']} MB; "
                  f"{result['cpu_cores']} CPU cores{_machine_suffix(result)}. Command: "
                  f"`{result.get('command', 'agecam benchmark --serve DIR')}`."]
    return "\n".join(lines)


def batch_throughput_table(result: dict | None) -> str:
    """Markdown: a batch's frames per second (wall time, start-up included) per engine and worker count."""
    if result is None:
        return "_Not measured yet: run `agecam benchmark --batch --save assets/batch-throughput.json`._"
    lines = ["| engine | workers | frames | wall time | frames/s | median fps of one video |", "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['engine']} | {row['workers']} | {row['frames']} | {row['wall_s']:.1f} s | "
                     f"{row['fps']:.1f} | {row['per_video_fps_median']:.1f} |")
    lines += ["", f"{result['clips']} generated clips of {result['frames_per_clip']} frames, {result['size']}, "
                  f"{result['faces_per_clip']} faces each; model `{result['model']}` ({result['runtime']}); "
                  f"{result['cpu_cores']} CPU cores{_machine_suffix(result)}. Command: `{result.get('command', 'agecam benchmark --batch')}`."]
    return "\n".join(lines)


def generated_sections(cards: dict[str, dict], results: list[dict], runtimes: dict[str, str] | None = None,
                       assets: Path = ASSETS) -> dict[tuple[str, str], str]:
    """Each generated section of the docs, keyed by its (begin, end) markers."""
    return {(BEGIN, END): models_table(cards), (PERF_BEGIN, PERF_END): performance_table(results),
            (BANDS_BEGIN, BANDS_END): age_bands_table(cards),
            (DEFAULT_BEGIN, DEFAULT_END): default_model_text(cards, results, runtimes),
            (SIZE_BEGIN, SIZE_END): face_size_table(cards),
            (ROBUST_BEGIN, ROBUST_END): robustness_table(cards),
            (CROSS_BEGIN, CROSS_END): cross_dataset_table(cards),
            (GROUPS_BEGIN, GROUPS_END): age_group_table(cards),
            (GATE_BEGIN, GATE_END): age_gate_table(cards),
            (TRACKS_BEGIN, TRACKS_END): track_ages_table(cards),
            (FIELD_BEGIN, FIELD_END): field_test_table(load_field_test(assets)),
            (COST_BEGIN, COST_END): detection_cost_table(load_cost_runs(assets)),
            (THROUGHPUT_BEGIN, THROUGHPUT_END): throughput_table(results),
            (INT8_BEGIN, INT8_END): int8_table(cards),
            (BATCH_BEGIN, BATCH_END): batch_throughput_table(load_asset(BATCH_THROUGHPUT, assets)),
            (STILLS_BEGIN, STILLS_END): stills_throughput_table(load_asset(STILLS_THROUGHPUT, assets)),
            (SERVE_BEGIN, SERVE_END): serve_table(load_asset(SERVE_BENCHMARK, assets)),
            **assurance_sections(cards, next((name for name, card in cards.items() if card.get("default")), None))}


def _replace_between(text: str, begin: str, end: str, body: str) -> str:
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + body + "\n" + text[stop:]


def update_readme(readme: Path, folder: Path | None = None, assets: Path = ASSETS) -> bool:
    """Mark the default model's card, then rewrite the generated sections of the page ``readme`` between
    their markers; True when the page changed."""
    cards, results, runtimes = report_inputs(folder, assets)
    mark_default(cards, results, folder, runtimes)
    text = new = readme.read_text()
    for (begin, end), body in generated_sections(cards, results, runtimes, assets).items():
        if begin in new:
            new = _replace_between(new, begin, end, body)
    if new != text:
        write_text_atomic(readme, new)
    return new != text


# The pages holding generated tables, rewritten by ``python -m agecam.training.evaluation.report`` (run from the checkout).
GENERATED_PAGES = ("docs/usage.md", "docs/how-it-works.md", "docs/models.md", "docs/performance.md",
                   "docs/age-assurance.md")

if __name__ == "__main__":
    for page in sys.argv[1:] or GENERATED_PAGES:
        update_readme(Path(page))
