import pandas as pd
import streamlit as st

from training.report import benchmark_runtime, load_benchmarks
from webapp.resources import NO_MODEL_HELP, cards

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
st.markdown("Test-split metrics in years, read from each model's card (`models/*.json`), written by the "
            "training run's evaluation. Reproduce with "
            "`agecam evaluate --data ../shared/data/utkface-crop-part1 --model NAME --split test`.")
st.dataframe(table, hide_index=True)

st.subheader("Comparison")
st.bar_chart(table.set_index("model")[["MAE", "RMSE"]], stack=False)

st.subheader("Error by age band")
by_band = pd.DataFrame({name: {band: m["mae"] for band, m in card["metrics"]["test"]["by_age"].items()}
                        for name, card in model_cards.items()})
st.bar_chart(by_band, stack=False, x_label="true age band", y_label="MAE (years)")

st.subheader("Speed")
benchmarks = load_benchmarks()
if benchmarks:
    st.markdown("End-to-end fps of the whole pipeline (headless, 640x480, with encoding) on the machine the "
                "benchmark ran on, read from `assets/benchmark-*.json`; each row's command reproduces it.")
    st.dataframe(pd.DataFrame([
        {"model": r["model"], "runtime": benchmark_runtime(r), "refresh every": r["refresh_every"],
         **{f"fps, {row['faces']} faces": row["fps"] for row in r["pipeline"]}, "command": r.get("command", "")}
        for r in benchmarks
    ]), hide_index=True)
else:
    st.info("No benchmark saved yet: run `agecam benchmark --save assets/benchmark-NAME.json`.")
