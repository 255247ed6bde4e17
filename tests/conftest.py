"""Shared fixtures: real UTKFace faces from ../shared, a tiny model built here, generated clips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")

REPO = Path(__file__).resolve().parent.parent
DATA_ENV = "AGECAM_UTKFACE_DIR"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "utkface-crop-part1"
FULL_DATA_ENV = "AGECAM_UTKFACE_FULL_DIR"
DEFAULT_FULL_DATA = REPO.parent / "shared" / "data" / "utkface"
MANIFEST = REPO / "training" / "splits" / "utkface.csv"
AGECAM = [sys.executable, "-m", "agecam"]


def utkface_dir() -> Path | None:
    folder = Path(os.environ.get(DATA_ENV, DEFAULT_DATA))
    return folder if folder.is_dir() and any(folder.iterdir()) else None


@pytest.fixture(scope="session")
def utk_dir() -> Path:
    folder = utkface_dir()
    if folder is None:
        pytest.skip(f"UTKFace crops not found: set {DATA_ENV} or provide {DEFAULT_DATA}")
    return folder


@pytest.fixture(scope="session")
def utk_full_dir() -> Path:
    """The whole UTKFace folder (22,107 faces) the shipped models are trained on."""
    folder = Path(os.environ.get(FULL_DATA_ENV, DEFAULT_FULL_DATA))
    if not (folder.is_dir() and any(folder.iterdir())):
        pytest.skip(f"UTKFace (full) not found: set {FULL_DATA_ENV} or provide {DEFAULT_FULL_DATA}")
    return folder


@pytest.fixture(scope="session")
def test_split_faces(utk_dir) -> list[tuple[np.ndarray, int, str]]:
    """(image, true age, file name) of held-out test-split faces, adults of varied ages."""
    from agecam.training.split import read_manifest

    manifest = read_manifest(MANIFEST)
    present = {p.name for p in utk_dir.iterdir()}
    wanted = {25: None, 45: None, 65: None}
    # The first listed test faces of the crop-part1 folder: the same three faces since session 1.
    for name, split in sorted(manifest.items()):
        if name not in present:
            continue
        age = int(name.split("_")[0])
        if split == "test" and age in wanted and wanted[age] is None:
            wanted[age] = name
    return [(cv2.imread(str(utk_dir / name)), age, name) for age, name in wanted.items() if name]


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small untrained CNN saved as .keras: exercises loading and inference, not accuracy."""
    import keras

    from agecam.training.models import build_cnn

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_cnn(32).save(path)
    return path


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def astronaut_png(tmp_path_factory, astronaut_bgr) -> Path:
    path = tmp_path_factory.mktemp("images") / "astronaut.png"
    cv2.imwrite(str(path), astronaut_bgr)
    return path


@pytest.fixture(scope="session")
def three_face_clip(tmp_path_factory, test_split_faces):
    """A 90-frame 640x480 clip of three moving held-out faces; returns (path, faces, config)."""
    from agecam.realtime.synthetic import SceneConfig, write_scene

    config = SceneConfig(frames=90, face_size=140, seed=3)
    path = tmp_path_factory.mktemp("clips") / "three_faces.mp4"
    write_scene(path, [face for face, _, _ in test_split_faces], config)
    return path, test_split_faces, config


def run_agecam(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, from the repository root."""
    return subprocess.run([*AGECAM, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def shipped_model_available() -> bool:
    return any((REPO / "models").glob("*.keras"))
