import pandas as pd
import streamlit as st

from agecam.core.model_card import FIGURE_KINDS, figure_path
from agecam.webapp.resources import NO_MODEL_HELP, cards

st.title("Training insights")
model_cards = cards()
if not model_cards:
    st.info(NO_MODEL_HELP)
    st.stop()


def plural(count, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def stage_text(stage: dict) -> str:
    """One earlier training stage in words."""
    start = "from random weights" if stage.get("weights_init") == "none" else "from the stage before"
    return (f"{plural(stage.get('epochs_run', '?'), 'epoch')} {start} at peak learning rate {stage.get('lr', '?')}, "
            f"{stage.get('seconds', 0) / 60:.0f} min: validation MAE {stage.get('val_mae', float('nan')):.2f}, "
            f"test MAE {stage.get('test_mae', float('nan')):.2f}")


def weights_text(card: dict) -> str:
    note = card.get("weights_note", "")
    # Cards name the record of earlier stages by its key; the page shows those stages below instead.
    return note.replace("how that was trained is under earlier_stages", "its earlier stages are listed below")


for name, card in model_cards.items():
    st.header(name)
    if "members" in card:  # an ensemble is not trained itself
        st.markdown(f"The mean of {', '.join(f'`{m}`' for m in card['members'])}, each trained on its own: their "
                    "sections are on this page.")
        continue
    training = card["training"]
    st.markdown(
        f"{card['architecture']} at {card['input_size']} px, {weights_text(card)}. Last stage: "
        f"{plural(training['epochs_run'], 'epoch')} (best: {training['best_epoch']}) in "
        f"{training['seconds'] / 60:.0f} min on {training['hardware'].get('cpu_count')} CPU cores, Keras "
        f"{training['keras_version']} ({training['keras_backend']}); {card['data']['split_sizes']['train']} "
        "training faces.")
    stages = card.get("earlier_stages") or []
    history = training.get("history")
    if history and len(history.get("loss", [])) > 1:
        curves = pd.DataFrame({"training loss": history["loss"], "validation loss": history["val_loss"]},
                              index=pd.RangeIndex(1, len(history["loss"]) + 1, name="epoch"))
        st.line_chart(curves, x_label="epoch", y_label="loss (MAE, years)")
    if stages:
        st.markdown(f"Trained in {len(stages) + 1} stages, each starting from the one before. Their epoch-by-epoch "
                    "losses were not kept then: the loss figure below shows the validation loss (MAE) and the "
                    "test MAE at the end of each stage.")
        for i, stage in enumerate(stages, start=1):
            st.markdown(f"- Stage {i}: {stage_text(stage)}.")
    # A loss figure of one epoch with no earlier stages would be a single point: not shown.
    kinds = [kind for kind in FIGURE_KINDS if kind != "training_plot" or training["epochs_run"] > 1 or stages]
    shown = [figure for figure in (figure_path(card["architecture"], kind) for kind in kinds) if figure.is_file()]
    for column, figure in zip(st.columns(max(len(shown), 1)), shown):
        column.image(str(figure), use_container_width=True)
    with st.expander("Training configuration"):
        st.json(training["config"])
