"""What the pages share: cached models, model cards, the dataset folder, ICE servers."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import streamlit as st

from agecam.core.age_model import AgeModel, available_models, default_model_name, load_cards
from agecam.core.analyzer import AgeCam, AgeCamConfig
from agecam.core.paths import UTKFACE_CROP_PART1

DATASET_ENV = "AGECAM_UTKFACE_DIR"
ICE_ENV = "AGECAM_ICE_SERVERS"
NO_MODEL_HELP = ("No trained model is installed in `models/`. Train one with "
                 "`agecam train --data ../shared/data/utkface-crop-part1 --arch cnn`, then reload this page.")


@st.cache_resource(show_spinner="Loading the age model…")
def shared_model(name: str) -> AgeModel:
    """One model instance per process, shared by every session and frame."""
    return AgeModel.load(name)


class SharedStillCam:
    """One still-image pipeline per model and process, shared by every session under a lock
    (a MediaPipe graph is not thread-safe, and one per session would never be released).

    Example::

        faces, picture = shared_still_cam("cnn").age_and_draw(image_bgr)
    """

    def __init__(self, model: AgeModel):
        self._cam = AgeCam(AgeCamConfig(), model=model)
        self._lock = threading.Lock()

    def age_and_draw(self, image_bgr, gate: int | None = None, blur_faces: bool = False):
        """The faces of a still image, with verdicts at an age ``gate`` when given, and the image with
        them drawn, hidden with ``blur_faces`` (``ModelError`` for a gate the model has no bounds for)."""
        with self._lock:
            self._cam.set_gate(gate)
            self._cam.set_annotator(replace(self._cam.annotator.config, blur_faces=blur_faces))
            faces = self._cam.get_image(image_bgr)
            return faces, self._cam.annotate(image_bgr, faces)


@st.cache_resource(show_spinner=False)
def shared_still_cam(name: str) -> SharedStillCam:
    return SharedStillCam(shared_model(name))


def model_names() -> list[str]:
    """Shipped models, the default first."""
    names = available_models()
    if not names:
        return []
    default = default_model_name()
    return [default] + [n for n in names if n != default]


def cards() -> dict[str, dict]:
    return load_cards()


def dataset_folder() -> Path | None:
    """UTKFace crops to pick examples from: $AGECAM_UTKFACE_DIR, else ../shared next to the repo."""
    folder = Path(os.environ.get(DATASET_ENV, UTKFACE_CROP_PART1))
    return folder if folder.is_dir() else None


def ice_servers() -> list[dict]:
    """ICE servers for WebRTC: none by default (localhost needs none), else $AGECAM_ICE_SERVERS (JSON)."""
    text = os.environ.get(ICE_ENV, "").strip()
    if not text:
        return []
    try:
        servers = json.loads(text)
    except json.JSONDecodeError:
        st.warning(f"{ICE_ENV} is not valid JSON; using no ICE servers.")
        return []
    return servers if isinstance(servers, list) else [servers]
