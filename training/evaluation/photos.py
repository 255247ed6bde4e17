"""Cross-dataset evaluation through the whole pipeline: labelled photos in, found-rate and age error out.

    agecam evaluate-photos ../shared/data/fgnet-dev --labels fgnet --save assets/cross-dataset-ensemble.json

Each photo goes through what ``agecam image`` does (``AgeCam.get_image``: detection with tiles and
the large-face pass, crop, age, calibrated range); the photo's subject is its largest face. Labels
come from the file names (UTKFace's ``age_gender_race_date``, FG-NET's ``PPPAaa[x]``) or from a
``file,age`` CSV. Reported overall, per age band and per person (FG-NET weighs 8-16 photos a person).

Example::

    photos = labelled_photos(Path("fgnet-dev"), "fgnet")
    with AgeCam(AgeCamConfig(model="cnn")) as cam:
        result = evaluate_photos(cam, photos)
    result["found_rate"], result["mae"], result["range_coverage"]
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agecam.core.images import IMAGE_SUFFIXES, ImageError, read_image_file
from agecam.core.utkface import parse_name
from .evaluate import mean_signed_error
from ..metrics import metrics_by_age_band, regression_metrics

LABEL_KINDS = ("auto", "utkface", "fgnet", "groups")
# A folder's age-group labels (FairFace's layout): a list of {"filename", "age": "20-29" | "70+", "gender"}.
GROUP_LABELS = "ground_truth.json"
# A photo whose channels differ by less than this (mean |B-G| + |G-R|, grey levels) is greyscale:
# black-and-white prints and their scans, which keep a faint tint (about 1 in 5 FG-NET photos).
MONOCHROME_CHROMA = 6.0
_FGNET = re.compile(r"^(\d{3})A(\d{2})[a-z]?\.jpe?g$", re.IGNORECASE)


class LabelError(ValueError):
    """Labels that cannot be read or match no photo."""


@dataclass(frozen=True)
class LabelledPhoto:
    """A photo and its label: an age, or an age group (``group`` = (low, high), high None for "70+";
    ``age`` is then NaN)."""

    path: Path
    age: float
    person: str | None = None  # FG-NET's person id; None when the labels do not say
    group: tuple[int, int | None] | None = None
    gender: str | None = None


def parse_group(text: str) -> tuple[int, int | None]:
    """``"20-29"`` -> (20, 29); ``"70+"`` -> (70, None); LabelError otherwise."""
    text = str(text).strip()
    try:
        if text.endswith("+"):
            return int(text[:-1]), None
        low, high = text.split("-")
        low, high = int(low), int(high)
    except ValueError:
        raise LabelError(f"age group {text!r} is neither LOW-HIGH nor LOW+") from None
    if not 0 <= low <= high <= 130:
        raise LabelError(f"age group {text!r} is not a range of ages")
    return low, high


def group_photos(folder: Path) -> list[LabelledPhoto]:
    """The photos named in ``folder``'s :data:`GROUP_LABELS` (found in the folder or its ``photos/``)."""
    path = folder / GROUP_LABELS
    try:
        rows = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise LabelError(f"cannot read labels {path}: {error}") from None
    if not isinstance(rows, list):
        raise LabelError(f"{path}: expected a list of {{filename, age, gender}} records")
    photos = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "filename" not in row or "age" not in row:
            raise LabelError(f"{path}: record {number} has no filename or age")
        name = Path(str(row["filename"])).name
        image = next((p for p in (folder / name, folder / "photos" / name) if p.is_file()), None)
        if image is not None:
            gender = row.get("gender")
            photos.append(LabelledPhoto(image, float("nan"), group=parse_group(row["age"]),
                                        gender=str(gender).lower() if gender else None))
    return photos


def distance_to_group(predicted: np.ndarray, groups) -> np.ndarray:
    """Signed years from each prediction to its group: 0 inside, negative below, positive above."""
    low = np.array([g[0] for g in groups], np.float64)
    high = np.array([np.inf if g[1] is None else g[1] + 1 for g in groups], np.float64)  # 20-29 holds 29.9
    predicted = np.asarray(predicted, np.float64)
    return np.where(predicted < low, predicted - low, np.where(predicted >= high, predicted - high, 0.0))


def group_report(predicted, groups, genders) -> dict:
    """Share inside the group, mean distance to it (and signed), overall, per group, per gender and for
    the children's groups (ages 0-9)."""
    predicted = np.asarray(predicted, np.float64)
    signed = distance_to_group(predicted, groups)
    names = np.array([f"{g[0]}+" if g[1] is None else f"{g[0]}-{g[1]}" for g in groups])

    def summary(mask) -> dict:
        return {"n": int(mask.sum()), "inside": float(np.mean(signed[mask] == 0)),
                "distance": float(np.mean(np.abs(signed[mask]))), "signed_distance": float(np.mean(signed[mask])),
                "median_predicted": float(np.median(predicted[mask]))}

    everyone = np.ones(len(predicted), bool)
    result = {"groups": {**summary(everyone)}}
    order = sorted(set(names), key=lambda n: int(n.split("-")[0].rstrip("+")))
    result["groups"]["by_group"] = {name: summary(names == name) for name in order}
    genders = np.array([g or "unknown" for g in genders])
    result["groups"]["by_gender"] = {g: summary(genders == g) for g in sorted(set(genders))}
    children = np.array([g[1] is not None and g[1] <= 9 for g in groups])
    if children.any():
        result["groups"]["children_0_9"] = summary(children)
    over_60 = np.array([g[0] >= 60 for g in groups])
    if over_60.any():
        result["groups"]["over_60"] = summary(over_60)
    return result


def fgnet_label(name: str) -> tuple[str, int] | None:
    """``(person, age)`` from an FG-NET name (``001A43a.JPG``: person 001 at 43), or None."""
    match = _FGNET.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def utkface_label(name: str) -> int | None:
    """The age of a UTKFace name, or None when it is malformed."""
    parsed = parse_name(name)
    return parsed[0] if parsed else None


def read_label_csv(path: Path) -> dict[str, float]:
    """``file,age`` rows (a header row is allowed) as ``{file name: age}``."""
    labels = {}
    try:
        with open(path, newline="") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 2:
                    raise LabelError(f"{path}:{number}: expected 'file,age', got {','.join(row)!r}")
                try:
                    age = float(row[1])
                except ValueError:
                    if number == 1:
                        continue  # a header
                    raise LabelError(f"{path}:{number}: age {row[1]!r} is not a number") from None
                if not 0 <= age <= 130:
                    raise LabelError(f"{path}:{number}: age {age:g} is outside 0-130")
                labels[row[0].strip()] = age
    except (OSError, UnicodeDecodeError) as error:
        raise LabelError(f"cannot read labels {path}: {error}") from None
    return labels


def labelled_photos(folder: Path, labels: str = "auto") -> list[LabelledPhoto]:
    """The photos of ``folder`` (not recursive) with their ages, by ``labels``: ``utkface`` or
    ``fgnet`` (from the names), ``groups`` (age groups in the folder's :data:`GROUP_LABELS`), ``auto``
    (the groups file when there is one, else whichever parses more names) or a ``file,age`` CSV path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LabelError(f"photo folder not found: {folder}")
    if labels == "groups" or (labels == "auto" and (folder / GROUP_LABELS).is_file()):
        photos = group_photos(folder)
        if not photos:
            raise LabelError(f"no photo named in {folder / GROUP_LABELS} is in {folder} or {folder / 'photos'}")
        return photos
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
    if labels not in LABEL_KINDS:
        table = read_label_csv(Path(labels))
        photos = [LabelledPhoto(p, table[p.name]) for p in paths if p.name in table]
    else:
        fgnet = [(p, fgnet_label(p.name)) for p in paths]
        fgnet_photos = [LabelledPhoto(p, float(parsed[1]), parsed[0]) for p, parsed in fgnet if parsed]
        utk_photos = [LabelledPhoto(p, float(age)) for p in paths if (age := utkface_label(p.name)) is not None]
        if labels == "auto":
            photos = fgnet_photos if len(fgnet_photos) >= len(utk_photos) else utk_photos
        else:
            photos = fgnet_photos if labels == "fgnet" else utk_photos
    if not photos:
        raise LabelError(f"no photo of {folder} has a label ({labels})")
    return photos


def evaluate_photos(cam, photos: list[LabelledPhoto], progress=None) -> dict:
    """Found-rate, MAE, bias, 80% range coverage, per age band and per person, for ``photos`` through
    ``cam.get_image``; ``progress(done, total)`` after each photo."""
    found_ages, predicted, lows, highs, persons, monochrome, groups, genders = [], [], [], [], [], [], [], []
    missed, unreadable = [], []
    started = time.perf_counter()
    for done, photo in enumerate(photos, start=1):
        try:
            image = read_image_file(photo.path)
        except (ImageError, OSError):
            unreadable.append(photo.path.name)
            continue
        faces = cam.get_image(image)
        if len(faces):
            subject = int(np.argmax(np.prod(faces.xyxy[:, 2:] - faces.xyxy[:, :2], axis=1)))
            found_ages.append(photo.age)
            predicted.append(float(faces.age[subject]))
            lows.append(float(faces.age_low[subject]))
            highs.append(float(faces.age_high[subject]))
            persons.append(photo.person)
            monochrome.append(is_monochrome(image))
            groups.append(photo.group)
            genders.append(photo.gender)
        else:
            missed.append(photo.path.name)
        if progress is not None:
            progress(done, len(photos))
    seconds = time.perf_counter() - started  # reading, detecting, cropping and ageing, as `agecam image`
    read = len(photos) - len(unreadable)
    if photos and photos[0].group is not None:  # age groups: no exact ages to take errors from
        from .assurance import group_assurance

        return {"photos": len(photos), "unreadable": len(unreadable), "found": len(predicted),
                "found_rate": len(predicted) / read if read else float("nan"), "labels": "age groups",
                **group_report(predicted, groups, genders), "missed": missed,
                "assurance": group_assurance(predicted, groups, genders, cam.model.gate_bounds),
                "seconds_per_photo": seconds / len(photos)}
    truth, guess = np.asarray(found_ages, np.float64), np.asarray(predicted, np.float64)
    low, high = np.asarray(lows), np.asarray(highs)
    inside = (truth >= low) & (truth <= high) if np.isfinite(low).all() and len(low) else np.zeros(0, bool)
    result = {"photos": len(photos), "unreadable": len(unreadable), "found": len(truth),
              "found_rate": len(truth) / read if read else float("nan"),
              **regression_metrics(truth, guess), "bias": mean_signed_error(truth, guess),
              "range_coverage": float(inside.mean()) if inside.size else None,
              "by_age": _with_bias(metrics_by_age_band(truth, guess), truth, guess, low, high),
              "by_colour": _by_colour(truth, guess, np.asarray(monochrome, bool)),
              "missed": missed, "seconds_per_photo": seconds / len(photos) if photos else float("nan")}
    bounds = cam.model.gate_bounds
    if bounds is not None and len(truth):
        from .evaluate import gate_report

        result["age_gate"] = gate_report(bounds, truth, guess)
    if any(person is not None for person in persons):
        by_person = defaultdict(list)
        for person, error in zip(persons, guess - truth):
            by_person[person].append(abs(error))
        per_person = [float(np.mean(errors)) for errors in by_person.values()]
        result["people"] = len(per_person)
        result["mae_per_person"] = {"mean": float(np.mean(per_person)), "median": float(np.median(per_person)),
                                    "worst": float(np.max(per_person))}
    return result


def is_monochrome(image_bgr: np.ndarray) -> bool:
    """Whether a photo is greyscale (or a tinted black-and-white scan): see ``MONOCHROME_CHROMA``."""
    image = np.asarray(image_bgr)
    if image.ndim < 3 or image.shape[2] < 3:
        return True
    step = max(1, max(image.shape[:2]) // 256)  # a thumbnail's worth of pixels is enough
    pixels = image[::step, ::step, :3].astype(np.int16)
    chroma = np.abs(pixels[..., 0] - pixels[..., 1]) + np.abs(pixels[..., 1] - pixels[..., 2])
    return float(chroma.mean()) < MONOCHROME_CHROMA


def _by_colour(truth, guess, monochrome) -> dict:
    """MAE and bias of the greyscale and the colour photos (the issue's old scans read older)."""
    parts = {}
    for name, mask in (("greyscale", monochrome), ("colour", ~monochrome)):
        if mask.any():
            parts[name] = {"n": int(mask.sum()), "mae": float(np.mean(np.abs(guess[mask] - truth[mask]))),
                           "bias": mean_signed_error(truth[mask], guess[mask])}
    return parts


def _with_bias(by_age: dict, truth, guess, low, high) -> dict:
    """``metrics_by_age_band`` plus each band's bias and, with ranges, their coverage."""
    from .evaluate import coverage_by_band
    from ..split import age_band

    bands = np.array([age_band(age) for age in truth])
    coverage = coverage_by_band(truth, low, high) if len(low) and np.isfinite(low).all() else {}
    for band, metrics in by_age.items():
        mask = bands == band
        metrics["bias"] = mean_signed_error(truth[mask], guess[mask])
        if band in coverage:
            metrics["range_coverage"] = coverage[band]["coverage"]
    return by_age


def record_in_card(model, source: str, result: dict) -> dict:
    """Write ``result``'s summary (no per-photo lists) into ``model``'s card as ``cross_dataset[source]``."""
    from agecam.core.model_card import update_card
    from .assess import card_path_of

    summary = {key: value for key, value in result.items() if key not in ("missed", "model")}
    return update_card(card_path_of(model), lambda card: card.update(
        cross_dataset={**card.get("cross_dataset", {}), source: summary}))
