"""Fit and measure track ages on generated tracks: the view-quality model, the track range, the gains.

    agecam track-test --model ensemble --data ../shared/data/utkface --record

Each held-out face becomes a track of ``views`` views (one per age refresh: 10 a second at 30 fps
with a refresh every third frame) whose size, roll, yaw, blur and JPEG quality drift from view to
view around the track's own levels (a slow random walk: a person moving, turning and tilting their
head in front of one camera). Every view is pasted into a frame and goes the pipeline's way:
detected in a region around the face (as a tracked face is searched for), cut with the calibrated
crop, aged by the model, measured by ``core.quality``.

- **Fit**, on validation faces (never the test split): the frontal pitch and sharp-view sharpness,
  then the quality coefficients (least squares of the log absolute error, less the model's spread
  line, on the features), then the track range (``core.fusion``: ``rho`` as the share of the
  standardised errors' variance that is shared within a track, the quantiles split-conformally on
  every prefix of every track), then the shown-age rule (``core.fusion.ShownAgeRule``: the widest
  range, on a half-year grid, up to which the shown age of 95% of the tracks moves by at most 4 years,
  both over whole tracks and over the first 2 s of the tracks whose face is 24-40 px wide).
- **Measure**, on test faces: single-view MAE against the track's fused age (the last one, and the
  one shown after 2 s), the range's coverage over every estimate of every track and by the number
  of views behind it, and how much the shown age still moves after 2 s (max - min). The same tracks
  read the old way (the mean of the last 15 estimates) are reported beside it. Under the shown-age
  rule: how far the single age moves from when it is first shown, on whole tracks and on their first
  2 s (all, and those whose face is 24-40 px wide), and how long the range is shown first.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agecam.core.age_model import AgeModel, ModelError
from agecam.core.age_range import AgeRangeCalibration
from agecam.core.crop import CropConfig
from agecam.core.detector import DetectorConfig, FaceDetector
from agecam.core.detections import Detections
from agecam.core.fusion import (ShownAgeRule, TrackAgeFusion, TrackRangeCalibration, fuse, relative_track_error,
                                 spread_of)
from agecam.core.geometry import iou_matrix
from agecam.core.quality import FEATURES, ViewQuality, quality_of, view_measures
from ..split import DEFAULT_MANIFEST, effective_splits

log = logging.getLogger(__name__)

FRAME = (640, 480)
ESTIMATES_PER_S = 10.0  # refreshes a second at 30 fps, one every third frame
SETTLE_S = 2.0  # the shown age's movement is measured after this long
SHORT_S = 2.0  # a short track: the shown-age rule is measured on every track's first 2 s too
SMALL_FACES = (24, 40)  # px: the short tracks of small faces are reported apart, and the shown-age rule must hold there
SMALL_GROUP = "first_2s_faces_24_40px"
SHOWN_MAX_MOVE = 4.0  # years the single age may move once shown, on SHOWN_SHARE of the fit's tracks
SHOWN_SHARE = 0.95


@dataclass(frozen=True)
class TrackTestConfig:
    """Which faces, how many tracks of how many views, and the seeds."""

    data: Path
    manifest: Path = DEFAULT_MANIFEST
    fit_tracks: int = 400  # validation faces, for the fit (160 left the test coverage 74-80%: the views of a track share their error, so a track is one sample)
    test_tracks: int = 200  # test faces, for the measures
    views: int = 50  # 5 s of refreshes
    seed: int = 22
    coverage: float = 0.8


@dataclass
class TrackViews:
    """One generated track through the pipeline: the true age, and per view found its estimate and measures."""

    age: float
    estimates: np.ndarray
    measures: dict  # name -> array, one per view found
    rendered: dict  # the rendering's parameters per view found (yaw, roll, blur, width, quality)


def _walk(rng: np.random.Generator, views: int, level: float, step: float, low: float, high: float,
          pull: float = 0.1) -> np.ndarray:
    """A mean-reverting random walk around ``level`` within ``[low, high]``."""
    values, value = np.empty(views), level
    for i in range(views):
        value += pull * (level - value) + rng.normal(0, step)
        value = min(max(value, low), high)
        values[i] = value
    return values


def track_renderings(rng: np.random.Generator, views: int) -> dict[str, np.ndarray]:
    """Per view: face width (px), roll (deg), yaw (warp strength, -0.45..0.45), blur sigma, JPEG quality."""
    width_level = math.exp(rng.uniform(math.log(25), math.log(220)))
    return {"width": np.exp(_walk(rng, views, math.log(width_level), 0.04, math.log(22), math.log(260))),
            "roll": _walk(rng, views, rng.uniform(-15, 15), 3.0, -35, 35, pull=0.15),
            "yaw": _walk(rng, views, rng.uniform(-0.25, 0.25), 0.06, -0.45, 0.45, pull=0.15),
            "blur": np.maximum(0.0, _walk(rng, views, rng.uniform(-1.0, 2.0), 0.15, -1.0, 3.0)),
            "jpeg": _walk(rng, views, rng.uniform(30, 95), 4.0, 20, 95)}


def render_view(face_bgr: np.ndarray, background: np.ndarray, width: float, roll: float, yaw: float, blur: float,
                jpeg: float, centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The frame with the face drawn ``width`` px wide at ``centre``, rolled, turned (a perspective
    warp: the far side narrower and shorter), blurred and JPEG-compressed around it; the face's box."""
    side = face_bgr.shape[0]
    squeeze = abs(yaw) * 0.5  # the far side's shrink
    near, far = (0.0, side - 1.0) if yaw >= 0 else (side - 1.0, 0.0)
    source = np.float32([[0, 0], [side - 1, 0], [side - 1, side - 1], [0, side - 1]])
    target = source.copy()
    for corner in range(4):
        if source[corner, 0] == far:
            target[corner, 1] = side / 2 + (source[corner, 1] - side / 2) * (1 - squeeze)
            target[corner, 0] = near + (far - near) * (1 - 0.6 * squeeze)
    warped = cv2.warpPerspective(face_bgr, cv2.getPerspectiveTransform(source, target), (side, side),
                                 borderMode=cv2.BORDER_REPLICATE)
    rotation = cv2.getRotationMatrix2D((side / 2, side / 2), roll, 1.0)
    warped = cv2.warpAffine(warped, rotation, (side, side), borderMode=cv2.BORDER_REPLICATE)
    w = max(8, int(round(width)))
    tile = cv2.resize(warped, (w, w), interpolation=cv2.INTER_AREA)
    if blur > 0.05:
        tile = cv2.GaussianBlur(tile, (0, 0), blur)
    frame = background.copy()
    height, frame_width = frame.shape[:2]
    x = int(np.clip(centre[0] - w / 2, 0, frame_width - w))
    y = int(np.clip(centre[1] - w / 2, 0, height - w))
    frame[y:y + w, x:x + w] = tile
    # The camera's compression over the face's neighbourhood (the whole frame would take longer to
    # encode and change nothing the detector and the crop read).
    x1, y1 = max(0, x - w), max(0, y - w)
    x2, y2 = min(frame_width, x + 2 * w), min(height, y + 2 * w)
    encoded = cv2.imencode(".jpg", frame[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])[1]
    frame[y1:y2, x1:x2] = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return frame, np.array([x, y, x + w, y + w], np.float32)


def _background(rng: np.random.Generator) -> np.ndarray:
    """A plain backdrop for the frames: a colour gradient with sensor noise."""
    ys, xs = np.mgrid[0:FRAME[1], 0:FRAME[0]].astype(np.float32)
    base, tilt = rng.uniform(60, 200, 3), rng.uniform(-0.1, 0.1, 3)
    frame = np.stack([base[c] + tilt[c] * (xs + ys) / 4 for c in range(3)], axis=2) + rng.normal(0, 4, (FRAME[1], FRAME[0], 3))
    return np.clip(frame, 0, 255).astype(np.uint8)


def run_track(model: AgeModel, detector: FaceDetector, crop: CropConfig, face_bgr: np.ndarray, age: float,
              rng: np.random.Generator, views: int) -> TrackViews:
    """One generated track through detection, crop, the model and the quality measures."""
    params = track_renderings(rng, views)
    scenery = _background(rng)
    centre = np.array([rng.uniform(150, FRAME[0] - 150), rng.uniform(130, FRAME[1] - 130)])
    estimates, measures, found_views = [], [], []
    for i in range(views):
        centre = np.clip(centre + rng.normal(0, 4, 2), [80, 80], [FRAME[0] - 80, FRAME[1] - 80])
        frame, box = render_view(face_bgr, scenery, params["width"][i], params["roll"][i], params["yaw"][i],
                                 params["blur"][i], params["jpeg"][i], tuple(centre))
        found = detector.detect_regions(frame, box[None])
        if not len(found) or iou_matrix(found.xyxy, box[None])[0, 0] < 0.3:
            continue
        crops = model.cut_faces(frame, found, crop)  # the model's own framing (box crop or aligned chip)
        estimates.append(float(model.predict(crops)[0]))
        measures.append(view_measures(found, crops))
        found_views.append(i)
    merged = {name: np.concatenate([m[name] for m in measures]) if measures else np.zeros(0)
              for name in ("width", "score", "roll", "yaw", "pitch", "sharpness")}
    rendered = {name: values[found_views] for name, values in params.items()}
    return TrackViews(float(age), np.asarray(estimates, np.float64), merged, rendered)


def make_detector() -> FaceDetector:
    """The detector as a stream's pipeline runs it (full range, reporting faces down to the tracker's
    extend confidence)."""
    return FaceDetector(DetectorConfig(min_confidence=0.25))


def generate_tracks(model: AgeModel, faces: list[tuple[np.ndarray, float]], views: int, seed: int,
                    detector_factory=make_detector) -> list[TrackViews]:
    """A track per ``(face, age)`` (seeded), through the pipeline; tracks with no view found are left out."""
    rng = np.random.default_rng(seed)
    crop = CropConfig.for_detector_range("full")
    detector = detector_factory()
    tracks, started = [], time.perf_counter()
    try:
        for i, (face, age) in enumerate(faces):
            track = run_track(model, detector, crop, face, age, rng, views)
            if len(track.estimates):
                tracks.append(track)
            if (i + 1) % 25 == 0:
                log.info("  %d/%d tracks, %.0f s", i + 1, len(faces), time.perf_counter() - started)
    finally:
        detector.close()
    return tracks


def fit_quality(tracks: list[TrackViews], age_range: AgeRangeCalibration | None) -> ViewQuality:
    """The quality model of ``core.quality`` fitted on ``tracks``' views (see the module)."""
    measures = {name: np.concatenate([t.measures[name] for t in tracks]) for name in tracks[0].measures}
    rendered = {name: np.concatenate([t.rendered[name] for t in tracks]) for name in tracks[0].rendered}
    estimates = np.concatenate([t.estimates for t in tracks])
    truth = np.concatenate([np.full(len(t.estimates), t.age) for t in tracks])
    upright = (np.abs(rendered["yaw"]) < 0.08) & (np.abs(rendered["roll"]) < 8)
    sharp = upright & (rendered["blur"] < 0.05) & (rendered["width"] >= 100) & (rendered["jpeg"] >= 70)
    frontal_pitch = float(np.nanmedian(measures["pitch"][upright])) if upright.sum() >= 20 else 0.55
    sharp_level = float(np.nanmedian(measures["sharpness"][sharp])) if sharp.sum() >= 20 else 6.0
    quality = ViewQuality({}, frontal_pitch, sharp_level)
    features = quality.features(measures)
    x = np.column_stack([np.ones(len(estimates))] + [features[name] for name in FEATURES])
    y = np.log(np.abs(estimates - truth) + 1.0) - np.log(spread_of(age_range, estimates))
    coefficients, *_ = np.linalg.lstsq(x, y, rcond=None)
    return ViewQuality({name: round(float(max(c, 0.0)), 4) for name, c in zip(FEATURES, coefficients[1:])},
                       round(frontal_pitch, 4), round(sharp_level, 4), int(len(estimates)))


def fit_track_range(tracks, age_range: AgeRangeCalibration | None, coverage: float = 0.8) -> TrackRangeCalibration:
    """``rho`` and split-conformal quantiles of ``core.fusion``'s track range from ``(true age,
    estimates, relative errors)`` tracks, every prefix of every track scored."""
    standardised = [(np.asarray(raw) - true) / (np.asarray(r) * spread_of(age_range, true))
                    for true, raw, r in tracks]
    total = np.var(np.concatenate(standardised))
    within = np.mean([np.var(z, ddof=1) for z in standardised if len(z) > 1])
    rho = float(np.clip(1.0 - within / total, 0.0, 1.0)) if total > 0 else 0.0
    scores = []
    for true, raw, r in tracks:
        for n in range(1, len(raw) + 1):
            age = fuse(raw[:n], r[:n], age_range)
            scores.append((true - age) / (float(spread_of(age_range, age)) * relative_track_error(r[:n], rho)))
    ordered = np.sort(scores)
    tail, n = (1 - coverage) / 2, len(ordered)
    q_high = float(ordered[min(n, math.ceil((n + 1) * (1 - tail))) - 1])
    q_low = float(ordered[max(1, math.floor((n + 1) * tail)) - 1])
    return TrackRangeCalibration(round(rho, 4), round(q_low, 4), round(q_high, 4), coverage, n)


def first_shown(low: np.ndarray, high: np.ndarray, max_width: float) -> int | None:
    """The index of the first estimate after which the range is at most ``max_width`` wide (None: never)."""
    narrow = np.flatnonzero(high - low <= max_width)
    return int(narrow[0]) if len(narrow) else None


def shown_movement(shown: dict[str, np.ndarray], max_width: float) -> float | None:
    """How far the single age moves from when it is first shown (``core.fusion.ShownAgeRule``), None
    when it is never shown (the range stays on screen)."""
    first = first_shown(shown["low"], shown["high"], max_width)
    if first is None:
        return None
    return float(np.max(np.abs(shown["age"][first:] - shown["age"][first])))


def fit_shown_age(groups: dict[str, list[dict[str, np.ndarray]]] | list[dict[str, np.ndarray]],
                  max_move: float = SHOWN_MAX_MOVE, share: float = SHOWN_SHARE) -> ShownAgeRule:
    """The widest range (half-year grid) up to which ``share`` of the tracks' single age moves by at
    most ``max_move`` years once shown (at this width and every narrower one), in every group of
    tracks (``shown_age_groups``: whole tracks, and the short tracks of small faces, whose estimates
    scatter most; a list is one group); a track that never narrows that far moves by nothing shown."""
    if not isinstance(groups, dict):
        groups = {"whole": list(groups)}
    replays = [r for group in groups.values() for r in group]
    widest = max(float(np.max(r["high"] - r["low"])) for r in replays)
    best = 0.5
    for width in np.arange(0.5, math.ceil(widest) + 0.5, 0.5):
        moves = [[shown_movement(r, width) or 0.0 for r in group] for group in groups.values() if group]
        if any(np.quantile(group, share) > max_move for group in moves):
            break  # the first width that lets too much move: wider ones passing again would be chance
        best = float(width)
    small = groups.get(SMALL_GROUP, [])
    return ShownAgeRule(best, max_move, share, len(groups.get("whole", replays)), len(small))


def shown_age_groups(tracks: list[TrackViews], replays: list[dict]) -> dict[str, list[dict]]:
    """The replays grouped as the shown-age rule is fitted and measured: whole tracks, their first 2 s,
    and the first 2 s of the tracks whose face is 24-40 px wide (its median width)."""
    short = int(SHORT_S * ESTIMATES_PER_S)
    groups: dict[str, list[dict]] = {"whole": [], "first_2s": [], SMALL_GROUP: []}
    for track, shown in zip(tracks, replays):
        groups["whole"].append(shown)
        prefix = {name: values[:short] for name, values in shown.items()}
        groups["first_2s"].append(prefix)
        width = float(np.median(track.rendered["width"])) if len(track.rendered["width"]) else 0.0
        if SMALL_FACES[0] <= width <= SMALL_FACES[1]:
            groups[SMALL_GROUP].append(prefix)
    return groups


def replay(track: TrackViews, quality: ViewQuality, age_range, track_range) -> dict[str, np.ndarray]:
    """The track's shown age and range after each of its estimates, as the pipeline's
    ``core.fusion.TrackAgeFusion`` shows them, and the old way's age (the mean of the last 15)."""
    fusion = TrackAgeFusion(age_range=age_range, track_range=track_range)
    shown_quality = quality_of(quality.relative_error(quality.features(track.measures)))
    ages, lows, highs, old = [], [], [], []
    for n, (estimate, view_quality) in enumerate(zip(track.estimates, shown_quality), start=1):
        d = fusion.update_with_detections(Detections(xyxy=[[0, 0, 1, 1]], tracker_id=[1], raw_age=[estimate],
                                                     quality=[view_quality]))
        ages.append(float(d.age[0]))
        lows.append(float(d.age_low[0]))
        highs.append(float(d.age_high[0]))
        old.append(float(np.mean(track.estimates[max(0, n - 15):n])))
    return {"age": np.array(ages), "low": np.array(lows), "high": np.array(highs), "old": np.array(old)}


def measure_shown_age(tracks: list[TrackViews], replays: list[dict], rule: ShownAgeRule) -> dict:
    """The shown-age rule on the test tracks: the single age's movement from when it is first shown
    (whole tracks; their first 2 s; the first 2 s of tracks whose face is 24-40 px), the share of
    tracks that show it, the seconds before it shows, and the share of estimates showing the range."""
    groups = shown_age_groups(tracks, replays)
    result = {}
    for name, group in groups.items():
        moves = [m for m in (shown_movement(r, rule.max_width) for r in group) if m is not None]
        firsts = [first_shown(r["low"], r["high"], rule.max_width) for r in group]
        waits = [f / ESTIMATES_PER_S for f in firsts if f is not None]
        range_share = [(f if f is not None else len(r["age"])) / max(len(r["age"]), 1) for f, r in zip(firsts, group)]
        result[name] = {"tracks": len(group), "showing_the_age": round(len(moves) / max(len(group), 1), 3),
                        "moves_p95": round(float(np.percentile(moves, 95)), 2) if moves else None,
                        "moves_max": round(float(np.max(moves)), 2) if moves else None,
                        "seconds_before_shown_median": round(float(np.median(waits)), 2) if waits else None,
                        "range_shown_share": round(float(np.mean(range_share)), 3) if group else None}
    return result


def measure(tracks: list[TrackViews], quality: ViewQuality, age_range, track_range) -> dict:
    """The test measures of the module docstring. Every MAE counts each track once (a track's
    single-view MAE is the mean over its views), so they compare like with like."""
    settle = int(SETTLE_S * ESTIMATES_PER_S)
    view, final, plain, old_final = [], [], [], []
    settled_view, settled, settled_final = [], [], []  # tracks with more than 2 s of estimates
    covered, covered_by_views, movement, old_movement = [], {}, [], []
    for track in tracks:
        shown = replay(track, quality, age_range, track_range)
        errors = np.abs(track.estimates - track.age)
        view.append(float(errors.mean()))
        final.append(abs(shown["age"][-1] - track.age))
        plain.append(abs(float(track.estimates.mean()) - track.age))
        old_final.append(abs(shown["old"][-1] - track.age))
        inside = (shown["low"] <= track.age) & (track.age <= shown["high"])
        covered.extend(inside)
        for n, hit in enumerate(inside, start=1):
            band = "1" if n == 1 else "2-4" if n < 5 else "5-19" if n < 20 else "20+"
            covered_by_views.setdefault(band, []).append(hit)
        if len(shown["age"]) > settle:
            settled_view.append(float(errors.mean()))
            settled.append(abs(shown["age"][settle - 1] - track.age))
            settled_final.append(final[-1])
            movement.append(float(np.ptp(shown["age"][settle:])))
            old_movement.append(float(np.ptp(shown["old"][settle:])))

    def mean(values):
        return round(float(np.mean(values)), 3) if len(values) else None

    def spread_summary(values):
        return {"mean": mean(values), "p90": round(float(np.percentile(values, 90)), 3) if values else None,
                "max": round(float(np.max(values)), 3) if values else None}

    return {"tracks": len(tracks), "views_found": int(sum(len(t.estimates) for t in tracks)),
            "view_mae": mean(view), "track_mae": mean(final), "unweighted_mean_mae": mean(plain),
            "old_track_mae": mean(old_final),
            "settled_tracks": len(settled), "settled_view_mae": mean(settled_view),
            "track_mae_after_2s": mean(settled), "settled_track_mae": mean(settled_final),
            "range_coverage": mean(covered),
            "range_coverage_by_views": {band: mean(hits) for band, hits in covered_by_views.items()},
            "shown_age_movement_after_2s": spread_summary(movement),
            "old_shown_age_movement_after_2s": spread_summary(old_movement)}


def _faces(config: TrackTestConfig, split: str, count: int, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    from ..data import scan_folder

    splits = effective_splits(config.manifest)
    records = [r for r in scan_folder(config.data).records if splits.get(r.name) == split]
    if not records:
        raise ModelError(f"{config.data} has no {split} faces in {config.manifest}")
    chosen = [records[i] for i in rng.permutation(len(records))[:count]]
    faces = []
    for record in chosen:
        image = cv2.imread(str(record.path), cv2.IMREAD_COLOR)
        if image is not None:
            faces.append((image, float(record.age)))
    return faces


def track_test(model: AgeModel, config: TrackTestConfig, detector_factory=make_detector) -> dict:
    """Fit on validation tracks, measure on test tracks (see the module); a JSON-ready record."""
    rng = np.random.default_rng(config.seed)
    age_range = model.age_range
    started = time.perf_counter()
    log.info("fit: %d validation tracks of %d views", config.fit_tracks, config.views)
    fit_tracks = generate_tracks(model, _faces(config, "val", config.fit_tracks, rng), config.views, config.seed,
                                 detector_factory)
    quality = fit_quality(fit_tracks, age_range)
    track_range = fit_track_range([(t.age, t.estimates, quality.relative_error(quality.features(t.measures)))
                                   for t in fit_tracks], age_range, config.coverage)
    groups = shown_age_groups(fit_tracks, [replay(t, quality, age_range, track_range) for t in fit_tracks])
    # the first 2 s of every track is implied by the whole track (a prefix moves no more than it)
    shown_age = fit_shown_age({name: groups[name] for name in ("whole", SMALL_GROUP)})
    log.info("quality %s; range %s; shown age %s", quality.to_dict(), track_range.to_dict(), shown_age.to_dict())
    log.info("measure: %d test tracks", config.test_tracks)
    test_tracks = generate_tracks(model, _faces(config, "test", config.test_tracks, rng), config.views,
                                  config.seed + 1, detector_factory)
    result = measure(test_tracks, quality, age_range, track_range)
    result["shown_age"] = measure_shown_age(test_tracks, [replay(t, quality, age_range, track_range)
                                                          for t in test_tracks], shown_age)
    return {"quality": quality.to_dict(), "range": track_range.to_dict(), "shown_age": shown_age.to_dict(),
            "test": result,
            "config": {"fit_tracks": config.fit_tracks, "test_tracks": config.test_tracks, "views": config.views,
                       "seed": config.seed, "estimates_per_s": ESTIMATES_PER_S},
            "seconds": round(time.perf_counter() - started, 1)}


def record_in_card(model: AgeModel, result: dict) -> dict:
    """Store ``result`` in the model's card as ``tracks`` (read by ``core.quality`` and ``core.fusion``)."""
    from agecam.core.model_card import update_card
    from .assess import card_path_of

    def change(card: dict) -> None:
        card["tracks"] = result

    return update_card(card_path_of(model), change)
