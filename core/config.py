"""The settings users choose from the command line, each stated once, in modules that load no native
library, so the CLI can show them as its defaults (``agecam/cli.py``) before OpenCV or TensorFlow load."""

from __future__ import annotations

from dataclasses import dataclass

RANGES = {"short": 0, "full": 1}  # MediaPipe's model_selection per detector range
RUNTIMES = ("auto", "onnx", "int8", "keras")  # how an age model runs (core.age_model.AgeModel.load)


@dataclass(frozen=True)
class DetectorConfig:
    """``range``: ``full`` (faces of any size, up to ~5 m) or ``short`` (close-up, ~3x faster).

    Measured on a 640x480 clip of three 150 px faces: full found all three in 59 of 60 frames
    at 5.9 ms/frame; short found them in 8 of 60 at 1.8 ms/frame. Short suits a webcam close-up.
    """

    range: str = "full"
    min_confidence: float = 0.5
    # Stills: also search overlapping tiles, each seen closer than in the whole frame (small faces).
    tile_stills: bool = True
    # Stills: each tile's side as a fraction of the image's shorter side (0.5: 12 tiles for 640x480).
    # 0.6 (6 tiles) halved the time of a still, but the field test's generated stills lost small
    # faces with it (40-63 px: 97.8% -> 93.3% found; one false alarm in 200 face-free scenes), so
    # 0.5 stays: the small-face recall is what the tiles are for.
    still_tile_fraction: float = 0.5
    # Stills: the smallest face (px) the tiles are there to find. Tiles are never smaller than needed
    # to show such a face at the size the detector finds reliably, none is searched in a picture small
    # enough for the whole pass to find it, nor where every such face would overlap a face found
    # already (core.detector.still_tiles).
    still_min_face: int = 40
    # Streams: also search one tile per frame, in turn, so small faces get found and start tracks.
    tile_streams: bool = True
    # Streams: a tracked face the whole-frame pass missed is searched for in a region around its
    # predicted box, magnified to the detector's input (a small or blurred face is found there).
    search_missed: bool = True
    max_searches: int = 6  # regions per frame at most (bounds the cost with many faces)
    # A face that fills most of the picture (a selfie, an ID photo, a webcam at arm's length) is
    # missed by the full-range model; seen with a border of this fraction of the side on every edge it
    # is found. Stills get this pass always, streams once per round of the tile rotation; 0: off.
    large_face_pad: float = 0.3

    def __post_init__(self):
        if self.range not in RANGES:
            raise ValueError(f"detector range must be one of {sorted(RANGES)}, not {self.range!r}")
        if not 0.0 <= self.large_face_pad <= 2.0:
            raise ValueError(f"large-face padding must be within 0..2, not {self.large_face_pad}")
        if not 0.2 <= self.still_tile_fraction <= 1.0:
            raise ValueError(f"still tile fraction must be within 0.2..1, not {self.still_tile_fraction}")
        if not 8 <= self.still_min_face <= 400:
            raise ValueError(f"smallest still face must be within 8..400 px, not {self.still_min_face}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"detection confidence must be within 0..1, not {self.min_confidence}")


@dataclass(frozen=True)
class EstimatorConfig:
    """``refresh_every``: re-estimate a track's age every k frames (1 = every frame), until it is
    settled (below).

    New tracks are estimated on their first frame; refreshes are staggered by track id so
    several faces do not all need inference on the same frame.
    """

    refresh_every: int = 3
    # A track with settle_after estimates is re-estimated every settled_refresh_every frames (never
    # more often than refresh_every): 86-92% of an estimate's error is shared by all views of one
    # face (issue #22's track test, rho), so its 10th estimate already brings the fused error within
    # 1% of what any number would; later ones mostly follow changes of view. 0: no settling.
    settle_after: int = 10
    settled_refresh_every: int = 10
    # A face due a refresh whose view is expected to err more than this many times a clean view's
    # (core.quality, before cropping: pose, size, score) waits for a better view, up to
    # max_defer_frames since its last estimate; 0: never wait.
    defer_above: float = 2.0
    max_defer_frames: int = 9


@dataclass(frozen=True)
class AgeGateConfig:
    """``threshold``: decide for every face whether it is over this age, under it, or to be checked
    (``core.age_gate``); None: no gate."""

    threshold: int | None = None

    def __post_init__(self):
        if self.threshold is not None and (isinstance(self.threshold, bool) or not isinstance(self.threshold, int)
                                           or not 1 <= self.threshold <= 100):
            raise ValueError(f"an age gate is a whole age within 1-100, not {self.threshold!r}")
