import cv2
import numpy as np
import pandas as pd
import streamlit as st

from agecam.core.age_gate import AgeGate, verdict_name
from agecam.core.age_model import ModelError
from agecam.core.images import ImageError, decode_image
from agecam.core.utkface import parse_name
from agecam.webapp.assurance import gate_rates_text
from agecam.webapp.markdown import as_text
from agecam.webapp.resources import NO_MODEL_HELP, cards, dataset_folder, model_names, shared_model, shared_still_cam

st.title("Image prediction")
names = model_names()
if not names:
    st.info(NO_MODEL_HELP)
    st.stop()

model_name = st.selectbox("Model", names)
gate_choice = st.selectbox("Age gate", ["off", 18, 21, 25], help=(
    "Decide for each face: over (its 98% lower bound is at or above the age), under (its 98% upper bound is "
    "below it) or check."))
gate = None if gate_choice == "off" else int(gate_choice)
blur_faces = st.checkbox("Blur faces", value=False, help="Hide every face in the picture shown (pixelated beyond "
                                                          "recognition); boxes and ages stay.")
measured = gate_rates_text(cards().get(model_name, {}), gate) if gate else None
if measured:
    st.caption(measured)
folder = dataset_folder()
sources = ["Upload an image"] + (["Pick from the dataset"] if folder else [])
source = st.radio("Image", sources, horizontal=True)

data, true_age, label = None, None, None
if source == "Upload an image":
    upload = st.file_uploader("JPEG, PNG or WebP, up to 10 MB", type=["jpg", "jpeg", "png", "webp"])
    if upload is not None:
        data, label = upload.getvalue(), upload.name
else:
    files = sorted(p.name for p in folder.iterdir() if parse_name(p.name))
    choice = st.selectbox(f"Face from {folder.name} ({len(files)} images)", files)
    if choice:
        data, label, true_age = (folder / choice).read_bytes(), choice, parse_name(choice)[0]

if data is None:
    st.stop()
try:
    image = decode_image(data)
except ImageError as error:
    st.error(f"{as_text(label)}: {as_text(error)}")
    st.stop()
try:
    model = shared_model(model_name)
    faces, picture = shared_still_cam(model_name).age_and_draw(image, gate, blur_faces)
except ModelError as error:
    st.error(f"The model cannot be used: {as_text(error)}")
    st.stop()


def range_text(low: float, high: float) -> str:
    """A calibrated 80% range as "29-40" (empty without calibration)."""
    return f"{low:.0f}-{high:.0f}" if np.isfinite(low) and np.isfinite(high) else ""


rows = [{"face": int(t), "x": int(x), "y": int(y), "w": int(w), "h": int(h), "score": round(float(s), 3),
         "age": round(float(a), 1), "80% range": range_text(low, high), **({"verdict": verdict_name(v)} if gate else {})}
        for t, (x, y, w, h), s, a, low, high, v in zip(faces.tracker_id, faces.xywh, faces.confidence, faces.age,
                                                       faces.age_low, faces.age_high, faces.verdict)]
whole_crop = len(faces) == 0 and true_age is not None
if whole_crop:
    # Dataset images are already face crops: with no detection, age the whole crop.
    age = float(model.predict([image])[0])
    low, high = model.age_range.interval([age]) if model.age_range is not None else ([np.nan], [np.nan])
    rows = [{"face": 1, "x": 0, "y": 0, "w": image.shape[1], "h": image.shape[0], "score": None,
             "age": round(age, 1), "80% range": range_text(low[0], high[0])}]
    if gate:
        rows[0]["verdict"] = verdict_name(AgeGate(gate, model.gate_bounds).decide([age])[0])
if true_age is not None:
    for row in rows:
        row["true age"], row["error"] = true_age, round(row["age"] - true_age, 1)

left, right = st.columns([3, 2])
left.image(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB), caption=as_text(label), use_container_width=True)
with right:
    if rows:
        if whole_crop:
            st.caption("No face was detected; this dataset image is a face crop, so the model aged the whole crop.")
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.warning("No face found in this image.")
