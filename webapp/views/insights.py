import streamlit as st

from agecam.core.model_card import FIGURE_KINDS, figure_path
from agecam.webapp.resources import NO_MODEL_HELP, cards

st.title("Training insights")
model_cards = cards()
if not model_cards:
    st.info(NO_MODEL_HELP)
    st.stop()

for name, card in model_cards.items():
    st.header(name)
    if "members" in card:  # an ensemble is not trained itself
        st.markdown(f"The mean of {', '.join(f'`{m}`' for m in card['members'])}: see their training below.")
        continue
    training = card["training"]
    st.markdown(
        f"{card['architecture']} at {card['input_size']} px, {card['weights_note']}. "
        f"{training['epochs_run']} epochs (best: {training['best_epoch']}) in {training['seconds'] / 60:.0f} min "
        f"on {training['hardware'].get('cpu_count')} CPU cores, Keras {training['keras_version']} "
        f"({training['keras_backend']}); {card['data']['split_sizes']['train']} training faces."
    )
    figures = [figure_path(card["architecture"], kind) for kind in FIGURE_KINDS]
    columns = st.columns(3)
    for column, figure in zip(columns, figures):
        if figure.is_file():
            column.image(str(figure), use_container_width=True)
        else:
            # The loss curves of a stage whose card predates the kept history cannot be redrawn.
            column.caption(f"{figure.name} is not there: `agecam evaluate --split test --figures assets` draws "
                           "the test figures, and the loss curves when the card keeps the run's history.")
    with st.expander("Training configuration"):
        st.json(training["config"])
