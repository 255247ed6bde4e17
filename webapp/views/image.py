import cv2
import numpy as np
import pandas as pd
import streamlit as st

from agecam.core.age_gate import AgeGate, verdict_name
from agecam.core.age_model import ModelError
from agecam.core.images import ImageError, decode_image
from agecam.core.utkface import parse_name
from agecam.webapp.assurance import gate_control
from agecam.webapp.markdown import as_text
from agecam.webapp.resources import NO_MODEL_HELP, cards, dataset_folder, model_names, shared_model, shared_still_cam

BANDS = ((0, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))
SEXES, RACES = ("male", "female"), ("White", "Black", "Asian", "Indian", "Others")  # UTKFace's labels
SHOWN_WIDTH = 640  # a picture is shown at its own size up to this width (never blown up)

st.title("Image prediction")
names = model_names()
if not names:
    st.info(NO_MODEL_HELP)
    st.stop()

settings, _ = st.columns([2, 1])
with settings:
    model_name = st.selectbox("Model", names)
    gate = gate_control(cards().get(model_name, {}))
    blur_faces = st.checkbox("Blur faces", value=False, help="Hide every face in the pictures shown (pixelated "
                                                              "beyond recognition); boxes and ages stay.")
folder = dataset_folder()
sources = ["Upload images"] + (["Pick from the dataset"] if folder else [])
source = st.radio("Images", sources, horizontal=True)


def range_text(low: float, high: float) -> str:
    """A calibrated 80% range as "29-40" (empty without calibration)."""
    return f"{low:.0f}-{high:.0f}" if np.isfinite(low) and np.isfinite(high) else ""


def face_rows(faces, label: str) -> list[dict]:
    return [{"image": label, "face": int(t), "age": round(float(a), 1), "80% range": range_text(low, high),
             **({"verdict": verdict_name(v)} if gate else {}), "detector score": f"{float(s):.2f}",
             "box (x, y, w, h)": ", ".join(str(int(round(float(v)))) for v in xywh)}
            for t, xywh, s, a, low, high, v in zip(faces.tracker_id, faces.xywh, faces.confidence, faces.age,
                                                   faces.age_low, faces.age_high, faces.verdict)]


def age_picture(data: bytes, label: str):
    """``(picture drawn, rows)`` for one image, or None after showing why it cannot be aged."""
    try:
        image = decode_image(data)
    except ImageError as error:
        st.error(f"{as_text(label)}: {as_text(error)}")
        return None
    try:
        faces, picture = shared_still_cam(model_name).age_and_draw(image, gate, blur_faces)
    except ModelError as error:
        st.error(f"The model cannot be used: {as_text(error)}")
        st.stop()
    return image, picture, face_rows(faces, label)


def show(picture, label: str) -> None:
    width = min(picture.shape[1], SHOWN_WIDTH)
    st.image(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB), caption=as_text(label), width=width)


if source == "Upload images":
    uploads = st.file_uploader("JPEG, PNG or WebP, up to 10 MB each", type=["jpg", "jpeg", "png", "webp"],
                               accept_multiple_files=True)
    if not uploads:
        st.stop()
    every_row = []
    for upload in uploads:
        done = age_picture(upload.getvalue(), upload.name)
        if done is None:
            continue
        _, picture, rows = done
        every_row += rows
        show(picture, upload.name)
        if not rows:
            st.warning(f"No face found in {as_text(upload.name)}.")
    if every_row:
        table = pd.DataFrame(every_row)
        st.dataframe(table, hide_index=True, use_container_width=True)
        st.download_button("Download the table (CSV)", table.to_csv(index=False).encode("utf-8"),
                           file_name="agecam-ages.csv", mime="text/csv")
    st.stop()

# A face of the dataset, chosen by age band: its true age is in its file name (UTKFace's labels).
labelled = [(p.name, parse_name(p.name)) for p in sorted(folder.iterdir())]
labelled = [(name, label) for name, label in labelled if label]
band_names = [f"{low}-{high}" if high < 200 else f"{low}+" for low, high in BANDS]
counts = {band: sum(low <= label[0] <= high for _, label in labelled) for band, (low, high) in zip(band_names, BANDS)}
band = st.selectbox("Age band", [b for b in band_names if counts[b]], format_func=lambda b: f"{b} ({counts[b]} faces)")
low, high = BANDS[band_names.index(band)]
in_band = [(name, label) for name, label in labelled if low <= label[0] <= high]
choice = st.selectbox(f"Face from {folder.name}", range(len(in_band)), format_func=lambda i: (
    f"#{i + 1}: {in_band[i][1][0]} years, {SEXES[in_band[i][1][1]]}, {RACES[in_band[i][1][2]]}"))
name, (true_age, _, _) = in_band[choice]
done = age_picture((folder / name).read_bytes(), name)
if done is None:
    st.stop()
image, picture, rows = done
whole_crop = not rows
if whole_crop:
    # Dataset images are already face crops: with no detection, age the whole crop.
    model = shared_model(model_name)
    age = float(model.predict([image])[0])
    ranges = model.age_range.interval([age]) if model.age_range is not None else ([np.nan], [np.nan])
    rows = [{"image": name, "face": 1, "age": round(age, 1), "80% range": range_text(ranges[0][0], ranges[1][0]),
             **({"verdict": verdict_name(AgeGate(gate, model.gate_bounds).decide([age])[0])} if gate else {}),
             "detector score": "-", "box (x, y, w, h)": f"0, 0, {image.shape[1]}, {image.shape[0]}"}]
for row in rows:
    row["true age"], row["error"] = true_age, round(row["age"] - true_age, 1)
left, right = st.columns([1, 2])
with left:
    show(picture, name)
with right:
    if whole_crop:
        st.caption("No face was detected; this dataset image is a face crop, so the model aged the whole crop.")
    columns = ["face", "age", "true age", "error", "80% range"] + (["verdict"] if gate else []) + ["detector score"]
    st.dataframe(pd.DataFrame(rows)[columns], hide_index=True, use_container_width=True)
