"""Age-assurance figures as a buyer of an age check reads them (NIST FATE AEV, NIST IR 8525).

On faces of known age (the UTKFace test split), for every sex and, where the labels allow, each
sex x race cell:

- **error**: MAE and bias (mean of estimate minus true age) with the count behind each cell, and the
  spread between the best and the worst cell of at least ``MIN_CELL`` faces;
- **Challenge 25**: of under-18s, the share estimated at 25 or more (a shop's "looks over 25, no ID
  asked" error); also of 14-17s (NIST's photos hold no one younger) and of 18-24s;
- **child online safety**: of 13-16-year-olds, the share estimated within 13-16 (an estimate in
  [13, 17)); of 8-12 and of 17-22, the share estimated within 13-16 (false positives);
- **the gate as shipped** (``core.age_gate``): of faces under the gate age, the share called
  ``over``; of faces at or above it, the shares called ``over``, ``check`` and ``under``.

Each figure carries its count and a 95% bootstrap interval (faces resampled with replacement,
seeded, ``RESAMPLES`` times). A cell with no face is reported as such (``value`` None), never as 0.

For labels given as age groups (FairFace), :func:`group_assurance` reports what the groups allow.

Example::

    >>> import numpy as np
    >>> true, estimate = np.array([15, 16, 30, 40]), np.array([26.0, 14.0, 31.0, 20.0])
    >>> rate(estimate[true < 18] >= 25)["value"]
    0.5
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 0
MIN_CELL = 30  # cells with fewer faces are reported but not ranked (their intervals are wide)
GATES = (18, 21, 25)
SEXES = {0: "male", 1: "female"}
RACES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}  # UTKFace's labels
CHILD_SAFETY = (13, 17)  # "within 13-16": an estimate in [13, 17)


def bootstrap_interval(values, statistic=np.mean, resamples: int = RESAMPLES, level: float = LEVEL,
                       seed: int = SEED) -> list[float] | None:
    """The ``level`` percentile interval of ``statistic`` over ``values`` resampled with replacement
    (None for no values). Seeded: the same values give the same interval."""
    values = np.asarray(values, np.float64).ravel()
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    stats = statistic(values[picks], axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return [float(low), float(high)]


def rate(hits) -> dict:
    """``{"n", "value", "ci"}`` of a share: how many of the faces ``hits`` marks (booleans)."""
    hits = np.asarray(hits, bool).ravel()
    if hits.size == 0:
        return {"n": 0, "value": None, "ci": None}
    return {"n": int(hits.size), "value": float(hits.mean()), "ci": bootstrap_interval(hits)}


def error_cell(y_true, y_pred) -> dict:
    """``{"n", "mae", "mae_ci", "bias", "bias_ci"}`` of one cell (values None when it is empty)."""
    error = np.asarray(y_pred, np.float64).ravel() - np.asarray(y_true, np.float64).ravel()
    if error.size == 0:
        return {"n": 0, "mae": None, "mae_ci": None, "bias": None, "bias_ci": None}
    return {"n": int(error.size), "mae": float(np.abs(error).mean()), "mae_ci": bootstrap_interval(np.abs(error)),
            "bias": float(error.mean()), "bias_ci": bootstrap_interval(error)}


def cells(sexes, races=None) -> dict[str, np.ndarray]:
    """Masks of ``all``, each sex and (with ``races``) each sex x race cell, named ``male``,
    ``female/Asian`` and so on; every cell of the label sets is listed, empty or not."""
    sexes = np.asarray(sexes)
    out = {"all": np.ones(sexes.size, bool)}
    for code, sex in SEXES.items():
        out[sex] = sexes == code
    if races is not None:
        races = np.asarray(races)
        for code, sex in SEXES.items():
            for race_code, race in RACES.items():
                out[f"{sex}/{race}"] = (sexes == code) & (races == race_code)
    return out


def error_by_cell(y_true, y_pred, groups: dict[str, np.ndarray]) -> dict:
    """MAE and bias per cell, and the spread between the best and worst cell of ``MIN_CELL`` faces or
    more (sex x race cells when there are any, else the sexes)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    by_cell = {name: error_cell(y_true[mask], y_pred[mask]) for name, mask in groups.items()}
    fine = [name for name in by_cell if "/" in name] or [name for name in by_cell if name in SEXES.values()]
    ranked = sorted((by_cell[name]["mae"], name) for name in fine if by_cell[name]["n"] >= MIN_CELL)
    spread = None
    if len(ranked) >= 2:
        spread = {"best": ranked[0][1], "worst": ranked[-1][1], "mae_spread": ranked[-1][0] - ranked[0][0],
                  "cells_ranked": len(ranked), "min_faces": MIN_CELL}
    return {"cells": by_cell, "spread": spread}


def rates_by_cell(hits, population, groups: dict[str, np.ndarray]) -> dict[str, dict]:
    """:func:`rate` of ``hits`` among ``population`` (masks over all faces) in each cell."""
    hits, population = np.asarray(hits, bool), np.asarray(population, bool)
    return {name: rate(hits[population & mask]) for name, mask in groups.items()}


def gate_by_cell(y_true, codes, threshold: int, groups: dict[str, np.ndarray]) -> dict:
    """The gate at ``threshold`` per cell: of faces under it, the share called ``over`` (and
    ``check``); of faces at or above it, the shares called ``over``, ``check`` and ``under``."""
    from agecam.core.age_gate import CHECK, OVER, UNDER

    y_true, codes = np.asarray(y_true, np.float64), np.asarray(codes)
    under = y_true < threshold
    return {"gate": int(threshold),
            "under_age_called_over": rates_by_cell(codes == OVER, under, groups),
            "under_age_sent_to_check": rates_by_cell(codes == CHECK, under, groups),
            "of_age_called_over": rates_by_cell(codes == OVER, ~under, groups),
            "of_age_sent_to_check": rates_by_cell(codes == CHECK, ~under, groups),
            "of_age_called_under": rates_by_cell(codes == UNDER, ~under, groups)}


def assurance_report(y_true, y_pred, sexes, races=None, gate_bounds=None, gates=GATES) -> dict:
    """Every figure of the module docstring for faces of known age ``y_true`` estimated at ``y_pred``,
    labelled with UTKFace's ``sexes`` (0 male, 1 female) and ``races`` (0-4); the gate's figures need
    the model's ``gate_bounds`` (``core.age_gate``)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    fine = cells(sexes, races)
    by_sex = {name: mask for name, mask in fine.items() if "/" not in name}
    low, high = CHILD_SAFETY
    in_band = (y_pred >= low) & (y_pred < high)
    report = {
        "faces": int(y_true.size),
        "bootstrap": {"resamples": RESAMPLES, "level": LEVEL, "seed": SEED},
        "error": error_by_cell(y_true, y_pred, fine),
        "challenge_25": {
            "under_18_estimated_25_plus": rates_by_cell(y_pred >= 25, y_true < 18, by_sex),
            "18_24_estimated_25_plus": rates_by_cell(y_pred >= 25, (y_true >= 18) & (y_true < 25), by_sex),
            # NIST's photos hold no one under 14: its Challenge-25 rate compares with this one.
            "14_17_estimated_25_plus": rates_by_cell(y_pred >= 25, (y_true >= 14) & (y_true < 18), by_sex),
        },
        "child_safety": {
            "13_16_estimated_13_16": rates_by_cell(in_band, (y_true >= 13) & (y_true < 17), by_sex),
            "8_12_estimated_13_16": rates_by_cell(in_band, (y_true >= 8) & (y_true < 13), by_sex),
            "17_22_estimated_13_16": rates_by_cell(in_band, (y_true >= 17) & (y_true < 23), by_sex),
        },
    }
    if gate_bounds is not None:
        from agecam.core.age_gate import AgeGate

        report["gates"] = {str(gate): gate_by_cell(y_true, AgeGate(gate, gate_bounds).decide(y_pred), gate, fine)
                           for gate in gates}
    return report


def gate_target(report: dict, gate: str = "18", limit: float = 0.01) -> dict:
    """Whether under-age faces called ``over`` at ``gate`` stay at or below ``limit`` in every sex x race
    cell with at least ``MIN_CELL`` under-age faces: the cells checked and those that miss."""
    rates = report.get("gates", {}).get(gate, {}).get("under_age_called_over", {})
    checked = {name: r for name, r in rates.items() if "/" in name and r["n"] >= MIN_CELL}
    missed = {name: r["value"] for name, r in checked.items() if r["value"] > limit}
    return {"gate": int(gate), "limit": limit, "min_faces": MIN_CELL, "cells_checked": sorted(checked),
            "cells_missed": missed, "met": bool(checked) and not missed}


def group_assurance(y_pred, groups, genders, gate_bounds=None) -> dict:
    """What age-group labels allow (FairFace): per gender, the shares of the 0-9 and 10-19 photos
    estimated at 25 or more, of the 0-9 and 20-29 photos estimated within 13-16, and of the 0-9 and
    10-19 photos called ``over`` at 18 (10-19 holds some 18- and 19-year-olds: an upper bound on the
    error). ``groups`` are ``(low, high)`` pairs (high None: open)."""
    y_pred = np.asarray(y_pred, np.float64)
    lows = np.array([g[0] for g in groups], np.float64)
    highs = np.array([np.inf if g[1] is None else g[1] for g in groups], np.float64)
    genders = np.array([g or "unknown" for g in genders])
    by_gender = {"all": np.ones(y_pred.size, bool), **{g: genders == g for g in sorted(set(genders))}}
    teen = (lows == 10) & (highs == 19)
    children = highs <= 9  # the 0-2 and 3-9 groups
    low, high = CHILD_SAFETY
    report = {
        "faces": int(y_pred.size),
        "bootstrap": {"resamples": RESAMPLES, "level": LEVEL, "seed": SEED},
        "10_19_estimated_25_plus": rates_by_cell(y_pred >= 25, teen, by_gender),
        "0_9_estimated_25_plus": rates_by_cell(y_pred >= 25, children, by_gender),
        "0_9_estimated_13_16": rates_by_cell((y_pred >= low) & (y_pred < high), children, by_gender),
        "20_29_estimated_13_16": rates_by_cell((y_pred >= low) & (y_pred < high), (lows == 20) & (highs == 29),
                                               by_gender),
    }
    if gate_bounds is not None:
        from agecam.core.age_gate import OVER, AgeGate

        called_over = AgeGate(18, gate_bounds).decide(y_pred) == OVER
        report["gate_18"] = {"10_19_called_over": rates_by_cell(called_over, teen, by_gender),
                             "0_9_called_over": rates_by_cell(called_over, children, by_gender)}
    return report


def record_in_card(model, key: str, report: dict) -> dict:
    """Write ``report`` (with the gate-at-18 target's verdict, when it has gates) into ``model``'s card
    as ``assurance[key]`` (``utkface-test``, ``fairface-dev``)."""
    from agecam.core.model_card import update_card
    from .assess import card_path_of

    if "gates" in report:
        report = {**report, "target_gate_18": gate_target(report)}
    return update_card(card_path_of(model), lambda card: card.update(
        assurance={**card.get("assurance", {}), key: report}))


def _share(r: dict) -> str:
    if r["value"] is None:
        return "no faces"
    low, high = r["ci"]
    return f"{r['value']:.1%} [{low:.1%}-{high:.1%}] of {r['n']}"


def summary_lines(report: dict) -> list[str]:
    """The report's headline figures as lines of text (``agecam evaluate --assurance``)."""
    lines = ["age assurance (95% bootstrap intervals):"]
    error = report["error"]
    for name, cell in error["cells"].items():
        if cell["n"]:
            lines.append(f"  {name:>14}: MAE {cell['mae']:5.2f} [{cell['mae_ci'][0]:.2f}-{cell['mae_ci'][1]:.2f}]  "
                         f"bias {cell['bias']:+6.2f}  (n={cell['n']})")
        else:
            lines.append(f"  {name:>14}: no faces")
    if error["spread"]:
        s = error["spread"]
        lines.append(f"  spread of {s['cells_ranked']} cells of {s['min_faces']}+ faces: {s['mae_spread']:.2f} y "
                     f"({s['best']} best, {s['worst']} worst)")
    c25 = report["challenge_25"]
    lines.append(f"  Challenge 25: under-18s estimated 25+: {_share(c25['under_18_estimated_25_plus']['all'])}; "
                 f"14-17s: {_share(c25['14_17_estimated_25_plus']['all'])}; "
                 f"18-24s: {_share(c25['18_24_estimated_25_plus']['all'])}")
    child = report["child_safety"]
    lines.append(f"  child safety: 13-16s estimated 13-16: {_share(child['13_16_estimated_13_16']['all'])}; "
                 f"8-12s: {_share(child['8_12_estimated_13_16']['all'])}; "
                 f"17-22s: {_share(child['17_22_estimated_13_16']['all'])}")
    for gate, g in report.get("gates", {}).items():
        lines.append(f"  gate {gate}: under-age called over {_share(g['under_age_called_over']['all'])}; of age: "
                     f"over {g['of_age_called_over']['all']['value']:.1%}, check "
                     f"{g['of_age_sent_to_check']['all']['value']:.1%}, under "
                     f"{g['of_age_called_under']['all']['value']:.1%}")
    if "gates" in report:
        target = gate_target(report)
        verdict = "met" if target["met"] else f"missed in {', '.join(target['cells_missed']) or 'no cell checked'}"
        lines.append(f"  target: under-18s called over <= 1% in every sex x race cell of {MIN_CELL}+ under-18s: "
                     f"{verdict}")
    return lines


def group_summary_lines(report: dict) -> list[str]:
    """:func:`group_assurance`'s figures as lines of text (``agecam evaluate-photos`` on age groups)."""
    names = {"10_19_estimated_25_plus": "10-19 estimated 25+", "0_9_estimated_25_plus": "0-9 estimated 25+",
             "0_9_estimated_13_16": "0-9 estimated 13-16", "20_29_estimated_13_16": "20-29 estimated 13-16"}
    lines = ["age assurance (95% bootstrap intervals):"]
    for key, label in names.items():
        lines.append(f"  {label}: {_share(report[key]['all'])}")
    for key, by_gender in report.get("gate_18", {}).items():
        lines.append(f"  gate 18: {key.split('_called')[0].replace('_', '-')} photos called over: "
                     f"{_share(by_gender['all'])}")
    return lines
