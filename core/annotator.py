"""Draw boxes, ``#id · age`` labels (``#id · low-high`` while a track's range is still wide) and an
optional FPS counter on frames."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .age_gate import CHECK, OVER, UNDER, verdict_name
from .blur import hide_faces
from .detections import Detections

# Distinct, colour-blind-friendly box colours (BGR), picked by track id.
PALETTE = ((255, 178, 29), (0, 159, 255), (96, 196, 0), (204, 102, 255), (0, 215, 255), (255, 96, 96))
FONT = cv2.FONT_HERSHEY_SIMPLEX
# With an age gate set, a face's colour is its verdict's (core.age_gate): over, check, under (BGR).
VERDICT_COLOURS = {OVER: (80, 175, 76), CHECK: (0, 190, 255), UNDER: (60, 60, 230)}


@dataclass(frozen=True)
class AnnotatorConfig:
    """Looks of the overlay; sizes scale with the frame so labels stay readable."""

    show_fps: bool = False
    show_range: bool = False  # "#3 · 34 (29-40)": the calibrated 80% range after the age
    blur_faces: bool = False  # hide every face (core.blur) under its box and label
    thickness_fraction: float = 0.004
    text_fraction: float = 0.0012


def _text_colour(background_bgr) -> tuple[int, int, int]:
    b, g, r = background_bgr
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


class AgeAnnotator:
    """Draw faces with their track id and age onto a frame (a copy unless ``inplace``).

    Example:

    >>> import numpy as np
    >>> frame = np.zeros((120, 160, 3), np.uint8)
    >>> d = Detections(xyxy=[[20, 30, 80, 100]], tracker_id=[3], age=[34.2])
    >>> AgeAnnotator().annotate(frame, d).any()
    True
    """

    def __init__(self, config: AnnotatorConfig = AnnotatorConfig()):
        self.config = config

    def annotate(self, frame: np.ndarray, detections: Detections, fps: float | None = None,
                 inplace: bool = False, also_hide=None) -> np.ndarray:
        """The frame with the faces drawn; with ``blur_faces``, each face hidden first, and the boxes
        ``also_hide`` (xyxy: faces not drawn, places a face may be) too."""
        out = frame if inplace else frame.copy()
        if self.config.blur_faces:
            hidden = [detections.xyxy] + ([np.asarray(also_hide, np.float32).reshape(-1, 4)]
                                          if also_hide is not None else [])
            hide_faces(out, np.concatenate(hidden))
        scale = max(out.shape[:2])
        thickness = max(1, round(scale * self.config.thickness_fraction))
        font_scale = max(0.4, scale * self.config.text_fraction)
        for box, track_id, age, low, high, shown, detected, verdict in zip(
                detections.xyxy, detections.tracker_id, detections.age, detections.age_low, detections.age_high,
                detections.age_shown, detections.detected, detections.verdict):
            colour = VERDICT_COLOURS.get(int(verdict)) or (
                PALETTE[int(track_id) % len(PALETTE)] if track_id >= 0 else (200, 200, 200))
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            if detected:
                cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
            else:  # coasted over a missed detection: a thin, dimmed box on the predicted place
                colour = tuple(int(0.55 * c + 0.45 * 128) for c in colour)
                cv2.rectangle(out, (x1, y1), (x2, y2), colour, max(1, thickness // 2), cv2.LINE_AA)
            parts = [f"#{track_id}" if track_id >= 0 else "", self.age_text(age, low, high, shown),
                     verdict_name(verdict)]
            self._label(out, [p for p in parts if p], (x1, y1), colour, font_scale, thickness)
        if self.config.show_fps and fps is not None:
            self._label(out, [f"{fps:.1f} FPS"], (0, 0), (40, 40, 40), font_scale, thickness, below=True)
        return out

    def age_text(self, age: float, low: float, high: float, shown: bool = True) -> str:
        """``34``, or ``34 (29-40)`` with ``show_range``; ``29-40`` while the track's range is too wide
        for one number (``shown`` False, ``core.fusion.ShownAgeRule``); ``...`` while nothing is known."""
        if not np.isfinite(age):
            return "..."
        if not shown:
            return f"{low:.0f}-{high:.0f}" if np.isfinite(low) and np.isfinite(high) else "..."
        if self.config.show_range and np.isfinite(low) and np.isfinite(high):
            return f"{age:.0f} ({low:.0f}-{high:.0f})"
        return f"{age:.0f}"

    def _label(self, out, parts, anchor, colour, font_scale, thickness, below=False):
        """A filled tag with the parts separated by a middle dot, above the box when it fits."""
        text_thickness = max(1, thickness // 2)
        sizes = [cv2.getTextSize(p, FONT, font_scale, text_thickness)[0] for p in parts]
        gap = int(font_scale * 14)  # room for the ' · ' separator (Hershey fonts have no '·')
        width = sum(w for w, _ in sizes) + gap * (len(parts) - 1) + 2 * thickness + 4
        height = max(h for _, h in sizes) + 2 * thickness + 6
        x, y = anchor
        top = y if below or y - height < 0 else y - height
        x = min(max(0, x), max(0, out.shape[1] - width))
        cv2.rectangle(out, (x, top), (x + width, top + height), colour, cv2.FILLED)
        ink = _text_colour(colour)
        cursor, baseline = x + thickness + 2, top + height - thickness - 3
        for i, (part, (w, _)) in enumerate(zip(parts, sizes)):
            cv2.putText(out, part, (cursor, baseline), FONT, font_scale, ink, text_thickness, cv2.LINE_AA)
            cursor += w
            if i < len(parts) - 1:
                cv2.circle(out, (cursor + gap // 2, top + height // 2), max(1, thickness // 2 + 1), ink, cv2.FILLED)
                cursor += gap
