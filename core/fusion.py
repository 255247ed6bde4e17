"""A track's age from all its evidence: quality-weighted, outlier-robust, with a range that narrows
as good views accumulate and stays calibrated.

Each estimate ``a_i`` of a track comes with its view's expected error relative to a clean view,
``r_i`` (``core.quality``). The track's age is a Huber M-estimate over the whole track: weights
``1 / r_i^2`` (inverse variance), and an estimate further than ``huber_k`` expected errors from the
current age counts as if it were at that distance (three re-weighting rounds from the weighted
median). A poor view still counts, just less; one wild estimate cannot drag the age.

The range: the views of one track are not independent (the same face, the same light: a face that
looks older than it is looks so in every view), so the error of the track's age has a part shared by
all its views and a part that averages out. With ``rho`` the share of an estimate's error variance
that is shared, the track's expected error relative to a single clean view is

    g = sqrt(rho * rbar^2 + (1 - rho) / sum(1 / r_i^2)),   rbar = sum(1 / r_i) / sum(1 / r_i^2),

which is ``r`` for one view of relative error ``r`` and falls towards ``sqrt(rho)`` as good views
accumulate: only poor views seen, the range stays wide. The range is ``[age + q_low s(age) g,
age + q_high s(age) g]`` with ``s`` the model's spread line (``core.age_range``); ``rho``, ``q_low``
and ``q_high`` are fitted on generated validation tracks (``training.evaluation.track_fusion``) and kept in the
card (``tracks.range``). A model without them gets its single-view 80% range around the track's age.

What goes on screen: a track's first estimates can lie far apart (a small face, a poor view), so its
fused age moves by many years in its first second. The single age is shown only once the track's
range is at most ``ShownAgeRule.max_width`` years wide, and from then on (it stays, so it does not
flicker); before that ``age_shown`` is False and the range is drawn instead. ``max_width`` is fitted
on generated validation tracks (``training.evaluation.track_fusion``) as the widest range after which the shown
age of 95% of tracks moves by at most ``max_move`` years, on whole tracks and on the first 2 s of small faces'
tracks alike (where a face is seen least well), and kept in the card (``tracks.shown_age``).

Example:

>>> import numpy as np
>>> fusion = TrackAgeFusion()
>>> d = Detections(xyxy=[[0, 0, 9, 9]], tracker_id=[1], raw_age=[30.0], quality=[1.0])
>>> float(fusion.update_with_detections(d).age[0])
30.0
>>> for raw, quality in ((32.0, 1.0), (70.0, 0.2), (31.0, 1.0)):  # a wild, poor view among good ones
...     d = Detections(xyxy=[[0, 0, 9, 9]], tracker_id=[1], raw_age=[raw], quality=[quality])
...     age = float(fusion.update_with_detections(d).age[0])
>>> 30 < age < 32
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .age_range import AgeRangeCalibration, stored_dataclass
from .detections import Detections


@dataclass(frozen=True)
class FusionConfig:
    """How a track's estimates become its age, and how long a track's evidence is kept."""

    huber_k: float = 1.5  # in expected errors: estimates further out count as if at this distance
    max_estimates: int = 600  # the oldest go first beyond this (a minute of refreshes at 10 a second)
    forget_after_s: float = 10.0  # a track's evidence is dropped this long after it was last seen
    # (longer than the tracker's reid_s, so a re-identified person keeps their evidence)


@dataclass(frozen=True)
class TrackRangeCalibration:
    """The fitted parameters of a track's range (see the module): shared error share and quantiles."""

    rho: float
    q_low: float
    q_high: float
    coverage: float = 0.8
    n: int = 0  # (track, prefix) scores it was fitted on

    @classmethod
    def from_card(cls, card: dict) -> "TrackRangeCalibration | None":
        return stored_dataclass(cls, card, "tracks", "range")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ShownAgeRule:
    """When a track's single age goes on screen (see the module): once its range is this narrow."""

    max_width: float  # years, high - low of the track's range
    max_move: float = 4.0  # years the shown age may move afterwards, on ``share`` of the fit's tracks
    share: float = 0.95
    n: int = 0  # validation tracks it was fitted on
    n_short_small: int = 0  # of them, small faces' tracks whose first 2 s had to pass too (0: not checked)

    @classmethod
    def from_card(cls, card: dict) -> "ShownAgeRule | None":
        return stored_dataclass(cls, card, "tracks", "shown_age")

    def to_dict(self) -> dict:
        return asdict(self)


def spread_of(age_range: AgeRangeCalibration | None, ages) -> np.ndarray:
    """The model's spread line at ``ages`` (1 year everywhere without a calibration)."""
    ages = np.asarray(ages, np.float64)
    if age_range is None:
        return np.ones_like(ages)
    return np.maximum(age_range.min_spread, age_range.intercept + age_range.slope * ages)


def fuse(ages, relative_errors, age_range: AgeRangeCalibration | None = None, huber_k: float = 1.5) -> float:
    """The Huber M-estimate of a track's age from its estimates (see the module); without the model's
    spread line (an uncalibrated model) no error scale is known: the quality-weighted mean."""
    ages = np.asarray(ages, np.float64)
    r = np.asarray(relative_errors, np.float64)
    prior = 1.0 / r**2
    if age_range is None:
        return float(np.sum(prior * ages) / np.sum(prior))
    order = np.argsort(ages)
    cumulative = np.cumsum(prior[order])
    age = float(ages[order][np.searchsorted(cumulative, cumulative[-1] / 2)])  # weighted median
    for _ in range(3):
        z = np.abs(ages - age) / (r * float(spread_of(age_range, age)))
        weights = prior * np.minimum(1.0, huber_k / np.maximum(z, 1e-9))
        age = float(np.sum(weights * ages) / np.sum(weights))
    return age


def relative_track_error(relative_errors, rho: float) -> float:
    """``g`` of the module: the track age's expected error relative to one clean view's."""
    r = np.asarray(relative_errors, np.float64)
    precision = float(np.sum(1.0 / r**2))
    rbar = float(np.sum(1.0 / r)) / precision
    return float(np.sqrt(rho * rbar**2 + (1.0 - rho) / precision))


class TrackAgeFusion:
    """Set each track's ``age`` (and its range: ``age_low``, ``age_high``) from all its estimates.

    Takes the frame's ``raw_age`` and ``quality`` (``core.quality``: 1 / relative error) of the
    faces estimated on it; see the module for the estimate and the range, and its example.
    """

    def __init__(self, config: FusionConfig = FusionConfig(), age_range: AgeRangeCalibration | None = None,
                 track_range: TrackRangeCalibration | None = None, fps: float = 30.0,
                 shown_age: ShownAgeRule | None = None):
        self.config, self.age_range, self.track_range = config, age_range, track_range
        self.shown_age = shown_age  # None: the age is shown from the first estimate
        self.forget_after_frames = round(config.forget_after_s * (fps if fps > 0 else 30.0))
        self._ages: dict[int, list[float]] = {}
        self._errors: dict[int, list[float]] = {}
        self._fused: dict[int, tuple[float, float, float]] = {}  # age, low, high
        self._last_seen: dict[int, int] = {}
        self._shown: set[int] = set()  # tracks whose single age is on screen
        self._frame = 0

    def update_with_detections(self, detections: Detections) -> Detections:
        """Add this frame's estimates to their tracks; set ``age``, ``age_low``, ``age_high``."""
        self._frame += 1
        for i, (track_id, raw, quality) in enumerate(zip(detections.tracker_id, detections.raw_age, detections.quality)):
            track_id = int(track_id)
            self._last_seen[track_id] = self._frame
            if np.isfinite(raw):
                r = 1.0 / float(quality) if np.isfinite(quality) and quality > 0 else 1.0
                ages, errors = self._ages.setdefault(track_id, []), self._errors.setdefault(track_id, [])
                ages.append(float(raw))
                errors.append(r)
                if len(ages) > self.config.max_estimates:
                    del ages[0], errors[0]
                self._fused[track_id] = self._estimate(ages, errors)
            detections.age[i], detections.age_low[i], detections.age_high[i] = self._fused.get(track_id, (np.nan,) * 3)
            detections.age_shown[i] = self._is_shown(track_id)
        self._forget_old_tracks()
        return detections

    def _is_shown(self, track_id: int) -> bool:
        if self.shown_age is None or track_id in self._shown:
            return True
        _, low, high = self._fused.get(track_id, (np.nan,) * 3)
        if np.isfinite(low) and np.isfinite(high) and high - low <= self.shown_age.max_width:
            self._shown.add(track_id)  # once on screen it stays: a number that comes and goes reads worse
            return True
        return False

    def _estimate(self, ages: list[float], errors: list[float]) -> tuple[float, float, float]:
        age = fuse(ages, errors, self.age_range, self.config.huber_k)
        if self.track_range is None:
            if self.age_range is None:
                return age, np.nan, np.nan
            low, high = self.age_range.interval([age])
            return age, float(low[0]), float(high[0])
        spread = float(spread_of(self.age_range, age)) * relative_track_error(errors, self.track_range.rho)
        return age, max(0.0, age + self.track_range.q_low * spread), age + self.track_range.q_high * spread

    def evidence(self, track_id: int) -> tuple[list[float], list[float]]:
        """A track's estimates and their relative errors so far."""
        return list(self._ages.get(track_id, [])), list(self._errors.get(track_id, []))

    def _forget_old_tracks(self) -> None:
        stale = [t for t, seen in self._last_seen.items() if self._frame - seen > self.forget_after_frames]
        for track_id in stale:
            for store in (self._ages, self._errors, self._fused, self._last_seen):
                store.pop(track_id, None)
            self._shown.discard(track_id)
