import pandas as pd
import streamlit as st

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
