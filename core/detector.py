"""Face detection with MediaPipe's bundled BlazeFace models (no download needed)."""

from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from .config import RANGES, DetectorConfig
from .detections import Detections
from .geometry import iou_matrix

log = logging.getLogger(__name__)

REGION_INPUT = 192  # side of a searched region as the detector sees it (the full-range model's input)
# The whole-image pass finds every face at least this wide at its 192 px input: measured on 400
# generated 640x480 stills of held-out faces, 100% found from 32 px up, 88% at 28-31, 70% at 20-23,
# 47% at 12-15 (docs/performance.md, "Folders of photos").
RELIABLE_INPUT_PX = 32


def tile_layout(width: int, height: int, overlap: float = 0.3, fraction: float = 0.5) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (xyxy) covering an image, each ``fraction`` of its shorter side.

    A face of 40 px in a 640x480 frame is ~12 px at the detector's 192 px input; in a 240 px tile
    it is ~32 px, where BlazeFace finds it. Images too small to gain from tiles get none.
    """
    side = max(int(min(width, height) * fraction), 1)
    if side < 96:
        return []
    step = max(1, int(side * (1 - overlap)))
    xs = sorted({*range(0, max(width - side, 0) + 1, step), max(width - side, 0)})
    ys = sorted({*range(0, max(height - side, 0) + 1, step), max(height - side, 0)})
    return [(x, y, min(x + side, width), min(y + side, height)) for y in ys for x in xs]


def still_tiles(width: int, height: int, found_xyxy: np.ndarray, fraction: float = 0.5,
                min_face: int = 40) -> list[tuple[int, int, int, int]]:
    """The tiles worth searching in a still of ``width`` x ``height`` whose whole pass found the faces
    ``found_xyxy``: the search costs what it can find.

    - None when the picture is small enough for the whole pass to find a ``min_face`` face
      (it shows it at :data:`RELIABLE_INPUT_PX` or more).
    - Tiles no smaller than needed to show a ``min_face`` face at that size (and ``fraction`` of
      the shorter side at least, as before), so a small picture gets few.
    - A tile is skipped when no ``min_face`` square in it stays clear of the people found
      (:func:`person_regions`): an unseen face cannot lie inside a found one's head, nor in front of
      their body unless it is near enough to be about as large (a portrait's tiles go).
    """
    reliable = RELIABLE_INPUT_PX * max(width, height, 1) / REGION_INPUT  # the whole pass finds faces this wide
    if min_face >= reliable:
        return []
    short = min(width, height)
    side = max(int(short * fraction), min(int(min_face * REGION_INPUT / RELIABLE_INPUT_PX), short))
    regions = [region for box in np.asarray(found_xyxy, np.float32).reshape(-1, 4)
               for region in person_regions(box, height, reliable)]
    return [tile for tile in tile_layout(width, height, fraction=side / max(short, 1))
            if holds_clear_square(tile, regions, min_face)]


def person_regions(box, height: int, reliable_face: float) -> list[tuple[float, float, float, float]]:
    """Where no face unseen by the whole pass can be, around a detector's face box (eyebrows to
    chin) in a picture of ``height`` px:

    - the head: wider by the ears, taller by the forehead and hair;
    - the body below it (three face widths wide, down to the picture's edge), when the face is at
      least twice ``reliable_face`` (the smallest the whole pass surely finds): a face there is in
      front of the body, so nearer and about as large (half as wide at least): found already; one
      behind it is hidden.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, tall, centre = x2 - x1, y2 - y1, (x1 + x2) / 2
    regions = [(centre - 0.8 * width, y1 - 0.6 * tall, centre + 0.8 * width, y2 + 0.1 * tall)]
    if width / 2 >= reliable_face:
        regions.append((centre - 1.5 * width, y2, centre + 1.5 * width, float(height)))
    return regions


def holds_clear_square(tile, regions, side: int) -> bool:
    """Whether a ``side`` x ``side`` square fits in ``tile`` overlapping none of ``regions`` (xyxy).
    Exact: if one fits, one fits with its left edge on the tile's or a region's right edge, and its
    top on the tile's or a region's bottom edge (slide it left and up until it meets one)."""
    tx1, ty1, tx2, ty2 = tile
    if tx2 - tx1 < side or ty2 - ty1 < side:
        return False
    xs = [x for x in [tx1, *(r[2] for r in regions)] if tx1 <= x <= tx2 - side]
    ys = [y for y in [ty1, *(r[3] for r in regions)] if ty1 <= y <= ty2 - side]
    return any(all(x + side <= r[0] or x >= r[2] or y + side <= r[1] or y >= r[3] for r in regions)
               for x in xs for y in ys)


def search_region(box: np.ndarray, width: int, height: int, scale: float = 2.2) -> tuple[int, int, int, int] | None:
    """A square around ``box`` (``scale`` times its larger side, at least 64 px), clipped to the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(64.0, scale * max(x2 - x1, y2 - y1))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    right, bottom = int(min(width, cx + side / 2)), int(min(height, cy + side / 2))
    if right - left < 16 or bottom - top < 16:
        return None
    return left, top, right, bottom


def non_max_suppression(detections: Detections, iou_threshold: float = 0.3, inside: float = 0.6) -> Detections:
    """The most confident of each group of overlapping boxes (OpenCV's ``cv2.dnn.NMSBoxes``).

    One face found at two scales (the whole frame, a tile, a magnified region) can give a tight
    and a loose box whose IoU is low; a box lying mostly (``inside``) within a more confident
    kept one is the same face and goes too.
    """
    if len(detections) < 2:
        return detections
    xywh = [[float(v) for v in row] for row in detections.xywh]
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh, detections.confidence.tolist(), 0.0, iou_threshold), np.int64).reshape(-1)
    kept: list[int] = []
    boxes = detections.xyxy
    for i in keep:  # NMSBoxes returns them most confident first
        if kept:
            top_left = np.maximum(boxes[kept, :2], boxes[i, :2])
            bottom_right = np.minimum(boxes[kept, 2:], boxes[i, 2:])
            overlap = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
            if (overlap / max(float(np.prod(boxes[i, 2:] - boxes[i, :2])), 1e-6)).max() > inside:
                continue
        kept.append(int(i))
    return detections[np.sort(np.asarray(kept, np.int64))]


def _cut_by_tile_edge(xyxy: np.ndarray, tile, width: int, height: int, margin: float = 2.0) -> np.ndarray:
    """Boxes touching a tile edge inside the image: a face cut in two there, whole in a neighbour tile."""
    x1, y1, x2, y2 = tile
    local = xyxy + np.array([x1, y1, x1, y1], np.float32)
    return (((local[:, 0] <= x1 + margin) & (x1 > 0)) | ((local[:, 1] <= y1 + margin) & (y1 > 0))
            | ((local[:, 2] >= x2 - margin) & (x2 < width)) | ((local[:, 3] >= y2 - margin) & (y2 < height)))


def _both(first, second):
    """``(first(), second())``, ``second`` run in a thread of its own meanwhile; its error is raised here."""
    result: dict = {}

    def run_second():
        try:
            result["value"] = second()
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error

    helper = threading.Thread(target=run_second, name="agecam-tile", daemon=True)
    helper.start()
    try:
        value = first()
    finally:
        helper.join()
    if "error" in result:
        raise result["error"]
    return value, result["value"]


class FaceDetector:
    """Find faces in BGR frames.

    Example::

        with FaceDetector(DetectorConfig(range="full")) as detector:
            faces = detector.detect(frame)
            print(faces.xyxy, faces.confidence)
    """

    def __init__(self, config: DetectorConfig = DetectorConfig()):
        from .mediapipe_loader import import_mediapipe

        mp = import_mediapipe()  # imported here, not at start: it loads TensorFlow Lite

        self.config = config
        self._mp = mp.solutions.face_detection.FaceDetection(
            model_selection=RANGES[config.range], min_detection_confidence=config.min_confidence
        )

    def detect(self, frame_bgr: np.ndarray, frame_index: int = 0) -> Detections:
        """Faces of one frame, boxes clipped to the frame."""
        return self._detect_rgb(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB), frame_index)

    def detect_tiled(self, image_bgr: np.ndarray, frame_index: int = 0) -> Detections:
        """Faces of a still: the whole image, then the overlapping tiles worth searching
        (:func:`still_tiles`) and, when the whole pass found no face, the large-face pass, merged by
        non-maximum suppression."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        whole = self._detect_rgb(rgb, frame_index)
        found = whole[whole.confidence >= self.config.min_confidence]
        if not len(found):  # a face filling the picture leaves no room for one the whole pass found
            whole = self._with_large_faces(rgb, whole, frame_index)
            found = whole[whole.confidence >= self.config.min_confidence]
        layout = still_tiles(*rgb.shape[1::-1], found.xyxy, self.config.still_tile_fraction,
                             self.config.still_min_face)
        tiles = [self._detect_tile(rgb, tile, frame_index) for tile in layout]
        return self._merge_confirmed(image_bgr, whole, Detections.merge(tiles) if tiles else whole[:0], frame_index)

    def detect_with_tile(self, frame_bgr: np.ndarray, tile_number: int, frame_index: int = 0,
                         companion: "FaceDetector | None" = None) -> Detections:
        """The whole frame plus one step of a rotation over its tiles and the large-face pass
        (``tile_number`` modulo their count), merged.

        Called with a counter, a stream visits every tile in turn (9 frames for 640x480, then the
        large-face pass): a small face is found within a third of a second, for the cost of one small
        detection per frame, and a face filling the frame as soon as the rotation reaches it.
        With a ``companion`` detector (used by no other thread meanwhile) the tile is seen by it in a
        thread of its own while this one sees the whole frame: MediaPipe runs both at once.
        """
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        tiles = tile_layout(*rgb.shape[1::-1])
        steps = len(tiles) + (1 if self.config.large_face_pad > 0 else 0)
        step = tile_number % steps if steps else None
        if step is None or step == len(tiles):
            whole = self._detect_rgb(rgb, frame_index)
            return whole if step is None else self._with_large_faces(rgb, whole, frame_index)
        if companion is None:
            whole, tile = self._detect_rgb(rgb, frame_index), self._detect_tile(rgb, tiles[step], frame_index)
        else:
            whole, tile = _both(lambda: self._detect_rgb(rgb, frame_index),
                                lambda: companion._detect_tile(rgb, tiles[step], frame_index))
        return self._merge_confirmed(frame_bgr, whole, tile, frame_index) if len(tile) else whole

    def detect_large(self, rgb: np.ndarray, frame_index: int = 0) -> Detections:
        """Faces of an RGB image seen with a border (``config.large_face_pad`` of its longer side on
        each edge), in the image's coordinates: a face filling the picture is found this way."""
        height, width = rgb.shape[:2]
        pad = int(round(self.config.large_face_pad * max(height, width)))
        if pad <= 0:
            return Detections.empty(frame_index)
        padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        faces = self._detect_rgb(padded, frame_index).shifted(-pad, -pad)
        faces.xyxy = np.clip(faces.xyxy, 0, [width, height, width, height])
        keep = (faces.xyxy[:, 2] - faces.xyxy[:, 0] >= 2) & (faces.xyxy[:, 3] - faces.xyxy[:, 1] >= 2)
        return faces[keep]

    def _with_large_faces(self, rgb: np.ndarray, whole: Detections, frame_index: int) -> Detections:
        """``whole`` plus the large-face pass's faces it lacks. These need no magnified second look
        (unlike tiles): the pass sees the picture smaller than the whole-frame pass, not closer."""
        if self.config.large_face_pad <= 0:
            return whole
        large = self.detect_large(rgb, frame_index)
        if len(whole) and len(large):
            large = large[iou_matrix(large.xyxy, whole.xyxy).max(axis=1) < 0.3]
        return non_max_suppression(Detections.merge([whole, large])) if len(large) else whole

    def _merge_confirmed(self, frame_bgr: np.ndarray, whole: Detections, tiled: Detections,
                         frame_index: int) -> Detections:
        """``whole`` plus the tile detections it lacks that a magnified look confirms, merged by NMS.

        Tiles see clutter closer too: of 400 generated face-free scenes, 4 gave a "face" in a tile
        (scores 0.61-0.71, 14-67 px wide); none survived a second look in a magnified region,
        while 98% of real 40-80 px faces did.
        """
        if len(whole) and len(tiled):
            tiled = tiled[iou_matrix(tiled.xyxy, whole.xyxy).max(axis=1) < 0.3]
        if len(tiled):
            seen_again = self.detect_regions(frame_bgr, tiled.xyxy, frame_index)
            if len(seen_again):
                tiled = tiled[iou_matrix(tiled.xyxy, seen_again.xyxy).max(axis=1) > 0.1]
            else:
                tiled = tiled[:0]
        return non_max_suppression(Detections.merge([whole, tiled])) if len(tiled) else whole

    def _detect_tile(self, rgb: np.ndarray, tile, frame_index: int) -> Detections:
        x1, y1, x2, y2 = tile
        faces = self._detect_rgb(np.ascontiguousarray(rgb[y1:y2, x1:x2]), frame_index)
        faces = faces[~_cut_by_tile_edge(faces.xyxy, tile, rgb.shape[1], rgb.shape[0])]
        return faces.shifted(x1, y1)

    def detect_regions(self, frame_bgr: np.ndarray, boxes: np.ndarray, frame_index: int = 0,
                       scales=None) -> Detections:
        """For each of ``boxes`` (xyxy), the face nearest its centre in a magnified region around it
        (``scales``: the region's side in box sides, 2.2 by default); a box with no face there gives nothing."""
        height, width = frame_bgr.shape[:2]
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scales = np.full(len(boxes), 2.2) if scales is None else np.asarray(scales, np.float32)
        found = []
        for box, scale in zip(boxes, scales):
            region = search_region(box, width, height, float(scale))
            if region is None:
                continue
            x1, y1, x2, y2 = region
            side = REGION_INPUT
            patch = cv2.resize(frame_bgr[y1:y2, x1:x2], (side, side), interpolation=cv2.INTER_LINEAR)
            faces = self._detect_rgb(cv2.cvtColor(patch, cv2.COLOR_BGR2RGB), frame_index)
            if not len(faces):
                continue
            to_frame = np.array([(x2 - x1) / side, (y2 - y1) / side] * 2, np.float32)
            faces.xyxy = faces.xyxy * to_frame + np.array([x1, y1, x1, y1], np.float32)
            faces.keypoints = faces.keypoints * to_frame[:2] + np.array([x1, y1], np.float32)
            centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
            found.append(faces[[int(np.argmin(np.linalg.norm(centres - (box[:2] + box[2:]) / 2, axis=1)))]])
        return Detections.merge(found) if found else Detections.empty(frame_index)

    def _detect_rgb(self, rgb: np.ndarray, frame_index: int) -> Detections:
        height, width = rgb.shape[:2]
        result = self._mp.process(rgb)
        if not result.detections:
            return Detections.empty(frame_index)
        boxes, scores, points = [], [], []
        for det in result.detections:
            box = det.location_data.relative_bounding_box
            x1, y1 = box.xmin * width, box.ymin * height
            boxes.append((x1, y1, x1 + box.width * width, y1 + box.height * height))
            scores.append(det.score[0] if det.score else 0.0)
            kps = det.location_data.relative_keypoints
            points.append([(kp.x * width, kp.y * height) for kp in kps][:6])
        xyxy = np.clip(np.asarray(boxes, np.float32), 0, [width, height, width, height])
        keep = (xyxy[:, 2] - xyxy[:, 0] >= 2) & (xyxy[:, 3] - xyxy[:, 1] >= 2)
        detections = Detections(xyxy=xyxy, confidence=scores, keypoints=np.asarray(points, np.float32),
                                frame_index=frame_index)
        return detections[keep]

    def close(self) -> None:
        """Release the MediaPipe graph (its threads and memory); safe to call twice."""
        if self._mp is not None:
            self._mp.close()
            self._mp = None

    @property
    def closed(self) -> bool:
        return self._mp is None

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
