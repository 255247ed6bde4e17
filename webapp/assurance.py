"""The measured age-assurance figures of a model, as the web pages show them (read from its card's
``assurance`` record, written by ``agecam evaluate --assurance --record``; docs/age-assurance.md)."""

from __future__ import annotations

GATES = ("off", 18, 21, 25)
GATE_HELP = ("Decide for each face: over (its 98% lower bound is at or above the age), under (its 98% upper bound "
             "is below it) or check; the box takes the verdict's colour.")
RECORD = "utkface-test"
COMMAND = "agecam evaluate --data ../shared/data/utkface --split test --model NAME --assurance --record"


def _share(rate: dict) -> str:
    if rate["value"] is None:
        return "no faces"
    return f"{rate['value']:.1%} (95% CI {rate['ci'][0]:.1%}-{rate['ci'][1]:.1%}, n={rate['n']})"


def gate_rates_text(card: dict, gate: int) -> str | None:
    """One Markdown paragraph: how the model's gate at ``gate`` did on the UTKFace test split, or None
    when its card has no such record."""
    record = card.get("assurance", {}).get(RECORD, {}).get("gates", {}).get(str(gate))
    if record is None:
        return None
    over, check = record["under_age_called_over"]["all"], record["under_age_sent_to_check"]["all"]
    adults = [record[key]["all"] for key in ("of_age_called_over", "of_age_sent_to_check", "of_age_called_under")]
    adult_text = ("no faces" if adults[0]["value"] is None else
                  f"over {adults[0]['value']:.1%}, check {adults[1]['value']:.1%}, under {adults[2]['value']:.1%} "
                  f"(n={adults[0]['n']})")
    return (f"Measured on the UTKFace test split: of faces under {gate}, called over {_share(over)}, "
            f"sent to check {check['value']:.1%}; of faces {gate} or older: {adult_text}. "
            "Details by sex and origin: docs/age-assurance.md.")


def summary_rows(cards: dict[str, dict]) -> list[dict]:
    """One row per model with an assurance record: the headline figures (shares in %)."""
    rows = []
    for name, card in cards.items():
        record = card.get("assurance", {}).get(RECORD)
        if record is None:
            continue
        cells, spread = record["error"]["cells"], record["error"]["spread"]
        gate = record.get("gates", {}).get("18")

        def percent(rate):
            return None if rate is None or rate["value"] is None else round(100 * rate["value"], 1)

        rows.append({"model": name, "MAE men": cells["male"]["mae"], "MAE women": cells["female"]["mae"],
                     "MAE spread, sex x race": None if spread is None else spread["mae_spread"],
                     "worst cell": None if spread is None else spread["worst"],
                     "under-18s at 25+ (%)": percent(record["challenge_25"]["under_18_estimated_25_plus"]["all"]),
                     "13-16s at 13-16 (%)": percent(record["child_safety"]["13_16_estimated_13_16"]["all"]),
                     "8-12s at 13-16 (%)": percent(record["child_safety"]["8_12_estimated_13_16"]["all"]),
                     "gate 18: under-18s over (%)": percent(gate["under_age_called_over"]["all"]) if gate else None,
                     "gate 18: under-18s check (%)": percent(gate["under_age_sent_to_check"]["all"]) if gate else None})
    return rows


def gate_control(card: dict) -> int | None:
    """The age-gate choice (None: off), with the gate's measured rates under it for the model of ``card``."""
    import streamlit as st

    choice = st.selectbox("Age gate", GATES, help=GATE_HELP)
    gate = None if choice == "off" else int(choice)
    measured = gate_rates_text(card, gate) if gate else None
    if measured:
        st.caption(measured)
    return gate
