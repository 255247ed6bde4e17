import pandas as pd
import streamlit as st

from agecam.core.hardware import machine_text
from agecam.core.model_card import benchmark_runtime, load_benchmarks
from agecam.webapp.assurance import COMMAND as ASSURANCE_COMMAND, summary_rows
from agecam.webapp.resources import NO_MODEL_HELP, cards

st.title("Model performance")
model_cards = cards()
if not model_cards:
    st.info(NO_MODEL_HELP)
    st.stop()

table = pd.DataFrame([
    {"model": name, "architecture": card["architecture"], "input (px)": card["input_size"],
     "test faces": card["metrics"]["test"]["n"], "MAE": card["metrics"]["test"]["mae"],
     "MSE": card["metrics"]["test"]["mse"], "RMSE": card["metrics"]["test"]["rmse"]}
    for name, card in model_cards.items()
])
st.markdown("Metrics in years on the duplicate-aware test split of the whole UTKFace folder, read from each "
            "model's card (`models/*.json`), written by the training run's evaluation. Reproduce with "
            "`agecam evaluate --data ../shared/data/utkface --model NAME --split test`.")
TWO_DECIMALS = {column: st.column_config.NumberColumn(format="%.2f") for column in ("MAE", "MSE", "RMSE")}
st.dataframe(table.round(2), hide_index=True, column_config=TWO_DECIMALS)

st.subheader("Comparison")
st.bar_chart(table.set_index("model")[["MAE", "RMSE"]], stack=False, x_label="model", y_label="error (years)")

st.subheader("Error by age band")
by_band = pd.DataFrame({name: {band: m["mae"] for band, m in card["metrics"]["test"]["by_age"].items()}
                        for name, card in model_cards.items()})
st.bar_chart(by_band, stack=False, x_label="true age band", y_label="MAE (years)")

st.subheader("MAE by face size")
degraded = {name: card["degraded"].get("test_part1") or card["degraded"]["test"]
            for name, card in model_cards.items() if card.get("degraded")}
if degraded:
    st.markdown("Each test face re-rendered as a camera would see it: shrunk to an effective face width, "
                "JPEG quality 50, enlarged back as the pipeline does. MAE (bias: + reads older, - younger) in "
                "years, read from the cards; written by `agecam calibrate --model NAME --data "
                "../shared/data/utkface --part1 ../shared/data/utkface-crop-part1`.")
    widths = sorted({int(w) for sizes in degraded.values() for w in sizes})
    st.dataframe(pd.DataFrame([
        {"face width (px)": width,
         **{f"{name} MAE": sizes[str(width)]["mae"] for name, sizes in degraded.items() if str(width) in sizes},
         **{f"{name} bias": sizes[str(width)]["bias"] for name, sizes in degraded.items() if str(width) in sizes}}
        for width in widths
    ]).round(2), hide_index=True, column_config={
        column: st.column_config.NumberColumn(format="%.2f") for column in
        [f"{name} {kind}" for name in degraded for kind in ("MAE", "bias")]})
    coverage = {name: card["age_range"]["test"]["coverage"] for name, card in model_cards.items()
                if card.get("age_range")}
    if coverage:
        st.markdown("Share of test faces whose true age lies in the model's calibrated 80% age range: "
                    + ", ".join(f"`{name}` {value:.1%}" for name, value in coverage.items()) + ".")
else:
    st.info("No degraded evaluation yet: run `agecam calibrate` (docs/training.md).")

st.subheader("Age assurance")
assurance = summary_rows(model_cards)
if assurance:
    st.markdown("What an age check is judged by (as NIST's FATE age-estimation evaluation reports it), on the "
                "UTKFace test split: MAE by sex and the spread between sex x race cells; the share of under-18s "
                "estimated 25 or older (Challenge 25); of 13-16s estimated 13-16 and of 8-12s wrongly so (child "
                "online safety); the gate at 18's under-18s called over and sent to check. Read from the cards, "
                f"written by `{ASSURANCE_COMMAND}`; intervals and every cell in docs/age-assurance.md.")
    st.dataframe(pd.DataFrame(assurance), hide_index=True, column_config={
        column: st.column_config.NumberColumn(format="%.2f") for column in
        ("MAE men", "MAE women", "MAE spread, sex x race")})
else:
    st.info(f"No age-assurance record yet: run `{ASSURANCE_COMMAND}`.")

st.subheader("Speed")
benchmarks = load_benchmarks()
if benchmarks:
    st.markdown("End-to-end fps of the whole pipeline (headless, 640x480, with encoding) on the machine the "
                "benchmark ran on, read from `assets/benchmark-*.json`; each row's command reproduces it.")
    speed = pd.DataFrame([
        {"model": r["model"], "runtime": benchmark_runtime(r), "refresh every (frames)": r["refresh_every"],
         **{f"fps, {row['faces']} faces": round(row["fps"], 1) for row in r["pipeline"]},
         "peer fps, 3 faces": next((round(row["peer"]["fps"], 1) for row in r["pipeline"]
                                    if row["faces"] == 3 and row.get("peer")), None),
         "machine": machine_text(r.get("machine")), "measured": r.get("measured_utc", "not recorded")[:10]}
        for r in benchmarks
    ])
    st.dataframe(speed, hide_index=True, use_container_width=True, column_config={
        column: st.column_config.NumberColumn(format="%.1f") for column in speed.columns if "fps" in column})
    st.markdown("Rows without a machine were measured before runs recorded it (docs/performance.md says where). The "
                "command behind each row:")
    st.code("\n".join(f"{r['model']} / {benchmark_runtime(r)}: {r.get('command', 'not recorded')}"
                      for r in benchmarks), language="text")
else:
    st.info("No benchmark saved yet: run `agecam benchmark --save assets/benchmark-NAME.json`.")
