"""agecam's Streamlit app: `agecam web` (or `streamlit run webapp/app.py`)."""

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="agecam", layout="wide")
navigation = st.navigation([
    st.Page(VIEWS / "overview.py", title="Overview", default=True),
    st.Page(VIEWS / "live.py", title="Live camera", url_path="live"),
    st.Page(VIEWS / "image.py", title="Image prediction", url_path="image"),
    st.Page(VIEWS / "performance.py", title="Model performance", url_path="performance"),
    st.Page(VIEWS / "insights.py", title="Training insights", url_path="insights"),
])
navigation.run()
