"""The age-assurance tables of ``docs/age-assurance.md``, written from the model cards' ``assurance``
records (``agecam evaluate --assurance --record``) and ``cross_dataset.fairface-dev.assurance``
(``agecam evaluate-photos ../shared/data/fairface-dev --record``); ``training.evaluation.report`` places them."""

from __future__ import annotations

UTKFACE_TEST = "utkface-test"
SUMMARY = ("<!-- assurance-summary-table:begin -->", "<!-- assurance-summary-table:end -->")
CELLS = ("<!-- assurance-cells-table:begin -->", "<!-- assurance-cells-table:end -->")
BY_SEX = ("<!-- assurance-sex-table:begin -->", "<!-- assurance-sex-table:end -->")
FAIRFACE = ("<!-- assurance-fairface-table:begin -->", "<!-- assurance-fairface-table:end -->")
RECORD_COMMAND = ("agecam evaluate --data ../shared/data/utkface --split test --model NAME --assurance --record")


def _rate(r: dict | None, interval: bool = True) -> str:
    if not r or r["value"] is None:
        return "no faces"
    if not interval:
        return f"{r['value']:.1%}"
    return f"{r['value']:.1%} [{r['ci'][0]:.1%}, {r['ci'][1]:.1%}] of {r['n']}"


def _mae(cell: dict) -> str:
    if not cell["n"]:
        return "no faces"
    return f"{cell['mae']:.2f} [{cell['mae_ci'][0]:.2f}, {cell['mae_ci'][1]:.2f}]"


def _records(cards: dict[str, dict]) -> list[tuple[str, dict]]:
    return [(name, card["assurance"][UTKFACE_TEST]) for name, card in cards.items()
            if UTKFACE_TEST in card.get("assurance", {})]


def _missing() -> str:
    return f"_No age-assurance record yet: run `{RECORD_COMMAND}`._"


def summary_table(cards: dict[str, dict]) -> str:
    """One row per model: MAE, the spread between sex x race cells, Challenge 25, child safety, the gate
    at 18 and its per-cell target."""
    records = _records(cards)
    if not records:
        return _missing()
    lines = ["| model | MAE (all) | MAE spread of sex x race cells | under-18s estimated 25+ | 14-17s estimated 25+ | "
             "18-24s estimated 25+ | 13-16s estimated 13-16 | 8-12s estimated 13-16 | 17-22s estimated 13-16 | "
             "gate 18: under-18s called over | gate 18: under-18s to check | target: <= 1% called over in every "
             "cell of 30+ under-18s |", "|---" * 12 + "|"]
    for name, r in records:
        spread = r["error"]["spread"]
        spread_cell = "-" if not spread else (f"{spread['mae_spread']:.2f} ({spread['best']} "
                                              f"{r['error']['cells'][spread['best']]['mae']:.2f} to {spread['worst']} "
                                              f"{r['error']['cells'][spread['worst']]['mae']:.2f})")
        gate = r.get("gates", {}).get("18")
        target = r.get("target_gate_18")
        verdict = "-" if not target else "met" if target["met"] else \
            "missed: " + ", ".join(f"{cell} {value:.1%}" for cell, value in target["cells_missed"].items())
        lines.append(
            f"| `{name}` | {_mae(r['error']['cells']['all'])} | {spread_cell} | "
            f"{_rate(r['challenge_25']['under_18_estimated_25_plus']['all'])} | "
            f"{_rate(r['challenge_25']['14_17_estimated_25_plus']['all'])} | "
            f"{_rate(r['challenge_25']['18_24_estimated_25_plus']['all'])} | "
            f"{_rate(r['child_safety']['13_16_estimated_13_16']['all'])} | "
            f"{_rate(r['child_safety']['8_12_estimated_13_16']['all'])} | "
            f"{_rate(r['child_safety']['17_22_estimated_13_16']['all'])} | "
            f"{_rate(gate['under_age_called_over']['all']) if gate else '-'} | "
            f"{_rate(gate['under_age_sent_to_check']['all'], False) if gate else '-'} | {verdict} |")
    return "\n".join(lines)


def cells_table(cards: dict[str, dict], model: str | None) -> str:
    """The ``model``'s sex x race cells: error, and the gate at 18 on each cell's under-18s and adults."""
    records = dict(_records(cards))
    if model not in records:
        return _missing()
    r = records[model]
    gate = r.get("gates", {}).get("18", {})
    lines = [f"Model `{model}`, UTKFace test split ({r['faces']} faces).", "",
             "| cell | faces | MAE [95% CI] | bias [95% CI] | gate 18: under-18s called over | under-18s to check | "
             "18+ called over / check / under |", "|---" * 7 + "|"]
    for cell, e in r["error"]["cells"].items():
        bias = "-" if not e["n"] else f"{e['bias']:+.2f} [{e['bias_ci'][0]:+.2f}, {e['bias_ci'][1]:+.2f}]"
        if gate:
            over, check = gate["under_age_called_over"][cell], gate["under_age_sent_to_check"][cell]
            adults = "/".join(_rate(gate[key][cell], False) for key in
                              ("of_age_called_over", "of_age_sent_to_check", "of_age_called_under"))
            gate_cells = f"{_rate(over)} | {_rate(check, False)} | {adults}"
        else:
            gate_cells = "- | - | -"
        lines.append(f"| {cell} | {e['n']} | {_mae(e)} | {bias} | {gate_cells} |")
    return "\n".join(lines)


def by_sex_table(cards: dict[str, dict], model: str | None) -> str:
    """The ``model``'s rates for all faces, men and women: Challenge 25, child safety, each gate."""
    records = dict(_records(cards))
    if model not in records:
        return _missing()
    r = records[model]
    rows = [("under-18s estimated 25+ (Challenge 25)", r["challenge_25"]["under_18_estimated_25_plus"]),
            ("14-17s estimated 25+ (Challenge 25 as NIST's ages allow)", r["challenge_25"]["14_17_estimated_25_plus"]),
            ("18-24s estimated 25+", r["challenge_25"]["18_24_estimated_25_plus"]),
            ("13-16s estimated 13-16 (true positives)", r["child_safety"]["13_16_estimated_13_16"]),
            ("8-12s estimated 13-16 (false positives)", r["child_safety"]["8_12_estimated_13_16"]),
            ("17-22s estimated 13-16 (false positives)", r["child_safety"]["17_22_estimated_13_16"])]
    for gate, g in r.get("gates", {}).items():
        rows += [(f"gate {gate}: under-{gate}s called over", g["under_age_called_over"]),
                 (f"gate {gate}: under-{gate}s to check", g["under_age_sent_to_check"]),
                 (f"gate {gate}: {gate}+ called over", g["of_age_called_over"]),
                 (f"gate {gate}: {gate}+ to check", g["of_age_sent_to_check"]),
                 (f"gate {gate}: {gate}+ called under", g["of_age_called_under"])]
    lines = [f"Model `{model}`, UTKFace test split: share [95% CI] of n.", "",
             "| measure | all | men | women |", "|---|---|---|---|"]
    for label, cells in rows:
        lines.append(f"| {label} | {_rate(cells['all'])} | {_rate(cells['male'])} | {_rate(cells['female'])} |")
    return "\n".join(lines)


def fairface_table(cards: dict[str, dict]) -> str:
    """Per model and gender, what FairFace's age groups allow (``training.evaluation.assurance.group_assurance``)."""
    rows = [(name, source, record["assurance"]) for name, card in cards.items()
            for source, record in card.get("cross_dataset", {}).items() if "assurance" in record]
    if not rows:
        return ("_No age-group assurance record yet: run `agecam evaluate-photos ../shared/data/fairface-dev "
                "--model NAME --record`._")
    columns = [("10_19_estimated_25_plus", "10-19 estimated 25+"), ("0_9_estimated_25_plus", "0-9 estimated 25+"),
               ("0_9_estimated_13_16", "0-9 estimated 13-16"), ("20_29_estimated_13_16", "20-29 estimated 13-16")]
    gate_columns = [("10_19_called_over", "gate 18: 10-19 called over"), ("0_9_called_over", "gate 18: 0-9 called over")]
    lines = ["| model | photos | " + " | ".join(label for _, label in columns + gate_columns) + " |",
             "|---" * (2 + len(columns) + len(gate_columns)) + "|"]
    for name, source, a in rows:
        for gender in a["10_19_estimated_25_plus"]:
            cells = [_rate(a[key][gender]) for key, _ in columns]
            cells += [_rate(a.get("gate_18", {}).get(key, {}).get(gender)) for key, _ in gate_columns]
            young = a["10_19_estimated_25_plus"][gender]["n"] + a["0_9_estimated_25_plus"][gender]["n"]
            lines.append(f"| `{name}` on {source}, {gender} | {young} aged 0-19 | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sections(cards: dict[str, dict], default: str | None) -> dict[tuple[str, str], str]:
    """Each generated section of the age-assurance page, keyed by its markers."""
    return {SUMMARY: summary_table(cards), CELLS: cells_table(cards, default), BY_SEX: by_sex_table(cards, default),
            FAIRFACE: fairface_table(cards)}
