"""``AgeCam``: the whole pipeline prepared once, then called per frame or per image."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .age_gate import AgeGate
from .age_model import AgeModel
from .appearance import describe_faces
from .annotator import AgeAnnotator, AnnotatorConfig
from .crop import CropConfig
from .detections import Detections
from .config import AgeGateConfig
from .detector import DetectorConfig, FaceDetector, non_max_suppression
from .estimator import AgeEstimator, EstimatorConfig
from .fusion import FusionConfig, ShownAgeRule, TrackAgeFusion, TrackRangeCalibration
from .quality import ViewQuality, quality_of
from .geometry import iou_matrix
from .tracker import FaceTracker, TrackerConfig


@dataclass
class AgeCamConfig:
    """Configuration of every stage; ``model`` is a shipped name, a path, or None (default);
    ``runtime`` is ``auto``, ``onnx`` or ``keras`` (see :class:`core.age_model.AgeModel`)."""

    model: str | None = None
    runtime: str = "auto"
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    crop: CropConfig | None = None  # None: calibrated for the detector's range
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    annotator: AnnotatorConfig = field(default_factory=AnnotatorConfig)
    gate: AgeGateConfig = field(default_factory=AgeGateConfig)
    # CPU threads for the age model (ONNX Runtime) and OpenCV; 0: the libraries' defaults (every core).
    # Several pipelines sharing a machine (a batch's workers) each take a share of the cores.
    threads: int = 0
    # In a stream that is not live (a file), decode and detect the next frame in a thread of their
    # own while this one is tracked, aged and written: measured, the pipeline otherwise keeps only
    # ~1.2 of 2 cores busy. A live source is never read ahead (it would add a frame of latency).
    look_ahead: bool = True

    @classmethod
    def from_settings(cls, model: str | None = None, runtime: str = "auto", detector_range: str | None = None,
                      confidence: float | None = None, small_faces: bool | None = None,
                      refresh_every: int | None = None, show_fps: bool = False, show_range: bool = False,
                      blur_faces: bool = False, age_gate: int | None = None) -> "AgeCamConfig":
        """The configuration from the settings a user picks (the command line's flags, the web pages'
        controls), each onto its named field; None keeps the field's default. The one way the CLI, the
        web app and the HTTP API build it.

        >>> AgeCamConfig.from_settings(confidence=0.6, age_gate=18).gate.threshold
        18
        >>> AgeCamConfig.from_settings() == AgeCamConfig()
        True
        """
        detector = DetectorConfig()
        detector = replace(detector, **{k: v for k, v in (("range", detector_range), ("min_confidence", confidence))
                                         if v is not None})
        if small_faces is not None:  # the tiles of stills and streams and the searches around missed tracks
            detector = replace(detector, tile_stills=small_faces, tile_streams=small_faces, search_missed=small_faces)
        estimator = EstimatorConfig() if refresh_every is None else replace(EstimatorConfig(), refresh_every=refresh_every)
        return cls(model=model, runtime=runtime, detector=detector, estimator=estimator,
                   annotator=AnnotatorConfig(show_fps=show_fps, show_range=show_range, blur_faces=blur_faces),
                   gate=AgeGateConfig(age_gate))


class StageTimer:
    """Wall-clock seconds per named stage of the frame in hand (a stage called twice adds up)."""

    def __init__(self):
        self.frame: dict[str, float] = {}

    def start_frame(self) -> dict[str, float]:
        self.frame = {}
        return self.frame

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.frame[name] = self.frame.get(name, 0.0) + time.perf_counter() - start


@dataclass
class FrameResult:
    """One processed frame of :meth:`AgeCam.stream`: what the source gave, its faces, and the seconds
    each stage took on it (``decode``, ``detect``, ``track``, ``crop``, ``infer``, ``smooth``; ``draw``
    once it is annotated; a caller may add its own, such as ``encode``)."""

    frame: object
    detections: Detections
    timings: dict[str, float]
    faces_inferred: int  # faces sent to the age model on this frame


class AgeCam:
    """Detect, track and age every face of a stream of frames.

    Example::

        cam = AgeCam(AgeCamConfig(model="cnn"))
        faces = cam.get(frame)            # Detections with tracker_id and age
        shown = cam.annotate(frame, faces)
        stills = cam.get_image(image)     # no tracking: every face estimated once
    """

    def __init__(self, config: AgeCamConfig = AgeCamConfig(), model: AgeModel | None = None):
        self.config = config
        if config.threads:
            cv2.setNumThreads(config.threads)  # OpenCV's pool is per process, as is this pipeline's share
        self.model = model or AgeModel.load(config.model, config.runtime, config.threads)
        self.age_range = self.model.age_range  # None when the model's card has no calibration
        self.track_range = TrackRangeCalibration.from_card(self.model.card)  # None: single-view ranges
        self.shown_age = ShownAgeRule.from_card(self.model.card)  # None: the age shown from the first estimate
        self.view_quality = ViewQuality.from_card(self.model.card)
        self.gate: AgeGate | None = None
        self.set_gate(config.gate.threshold)  # before the detector: a model without gate bounds fails here
        crop = config.crop or CropConfig.for_detector_range(config.detector.range)
        # The user's confidence starts tracks; the detector also reports weaker faces, which may
        # only extend a track already there (core.tracker).
        start = config.detector.min_confidence
        extend = min(config.tracker.extend_confidence, start)
        self.tracker_config = replace(config.tracker, start_confidence=start, extend_confidence=extend)
        self.detector = FaceDetector(replace(config.detector, min_confidence=extend))
        self._region_detector: FaceDetector | None = None  # made for the first stream read ahead
        self._tile_detector: FaceDetector | None = None
        self.timer = StageTimer()
        self.estimator = AgeEstimator(self.model, config.estimator, crop, self.timer, self.view_quality)
        self.annotator = AgeAnnotator(config.annotator)
        # With faces hidden (AnnotatorConfig.blur_faces): per frame index, every place a face may be
        # that the shown detections leave out (weak detections, tracks' predicted boxes), hidden too.
        self._also_hide: dict[int, np.ndarray] = {}
        # One throw-away detection loads MediaPipe's graph now rather than on the first frame.
        self.detector.detect(np.zeros((64, 64, 3), np.uint8))
        self.reset()

    def set_confidence(self, confidence: float) -> bool:
        """Start tracks at ``confidence`` from now on, keeping the tracks and the detector; False (and
        nothing changed) when the detector itself would have to report weaker faces than it does."""
        extend = min(self.config.tracker.extend_confidence, confidence)
        if extend != self.detector.config.min_confidence:
            return False
        self.tracker_config = replace(self.tracker_config, start_confidence=confidence, extend_confidence=extend)
        self.tracker.config = self.tracker_config
        return True

    @property
    def start_confidence(self) -> float:
        """The confidence that starts a track (and that a still's face needs)."""
        return self.tracker_config.start_confidence

    def set_gate(self, threshold: int | None) -> None:
        """Decide over/under/check at ``threshold`` years from now on (None: no gate). ``ModelError``
        when the model's card holds no gate bounds (``agecam calibrate`` fits them)."""
        if threshold is None:
            self.gate = None
            return
        self.gate = AgeGate(threshold, self.model.require_gate_bounds())

    def set_annotator(self, config: AnnotatorConfig) -> None:
        """Draw with ``config`` from the next frame on."""
        self.annotator = AgeAnnotator(config)

    def reset(self, fps: float = 30.0) -> None:
        """Forget all tracks: the start of a new video, whose frame rate scales the tracker's time limits."""
        self.tracker = FaceTracker(self.tracker_config, fps)
        self.fusion = TrackAgeFusion(self.config.fusion, self.age_range, self.track_range, fps, self.shown_age)
        self.estimator.reset()
        self.frame_index = 0

    def stream(self, frames: Iterable, fps: float = 30.0) -> Iterator[FrameResult]:
        """Process a stream frame by frame, as it comes (a new stream: tracks start afresh).

        ``frames`` yields BGR images, or objects holding one as ``.image`` (``realtime.sources.Frame``);
        each result carries it back. Used by the window, headless runs and the benchmark alike. Unless
        ``frames`` says it is ``live``, the next frame is decoded and detected while this one's result
        is used (``AgeCamConfig.look_ahead``), so stage times may add up to more than a frame's time.

        Example::

            for result in cam.stream(frames_bgr, fps=25):
                print(result.detections.tracker_id, result.detections.age, result.timings["detect"])
        """
        self.reset(fps)
        if self.config.look_ahead and not getattr(frames, "live", False):
            yield from self._stream_looking_ahead(iter(frames))
            return
        source = iter(frames)
        while True:
            asked = time.perf_counter()
            frame = next(source, None)
            if frame is None:
                return
            decoded = time.perf_counter() - asked
            before = self.estimator.inferences
            detections = self.get(getattr(frame, "image", frame))
            self.timer.frame["decode"] = decoded
            yield FrameResult(frame, detections, self.timer.frame, self.estimator.inferences - before)

    def _stream_looking_ahead(self, source: Iterator) -> Iterator[FrameResult]:
        """:meth:`stream` with the next frame read and detected by a worker thread meanwhile. The
        worker has the detector to itself; searches around missed tracks (which need this frame's
        tracks) use a second one."""
        regions = self._second_detector()
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agecam-detect")
        try:
            pending = worker.submit(self._read_and_detect, source, self.frame_index)
            while True:
                frame, detections, seconds = pending.result()
                if frame is None:
                    return
                pending = worker.submit(self._read_and_detect, source, self.frame_index + 1)
                before = self.estimator.inferences
                self.timer.start_frame().update(seconds)
                detections = self._after_detection(getattr(frame, "image", frame), detections, regions)
                yield FrameResult(frame, detections, self.timer.frame, self.estimator.inferences - before)
        finally:
            worker.shutdown(wait=True, cancel_futures=True)  # a file's next frame: milliseconds

    def _read_and_detect(self, source: Iterator, frame_index: int):
        """The next frame, its faces seen by the whole-frame pass and tile step, and the seconds each took."""
        asked = time.perf_counter()
        frame = next(source, None)
        if frame is None:
            return None, None, {}
        decoded = time.perf_counter() - asked
        detections = self._detect_frame(getattr(frame, "image", frame), frame_index, self._tile_detector)
        return frame, detections, {"decode": decoded, "detect": time.perf_counter() - asked - decoded}

    def _second_detector(self) -> FaceDetector:
        """The detector of the searches around missed tracks, and (made with it) the one that sees
        the tile step beside the whole-frame pass in the worker: each used by one thread only."""
        self.prepare_stream()
        return self._region_detector

    def prepare_stream(self) -> None:
        """Make now the detectors a stream read ahead uses (else made at its first frame): a caller
        that hides native libraries' start-up lines calls it inside that block."""
        if self._region_detector is None:
            self._region_detector = FaceDetector(self.detector.config)
            self._region_detector.detect(np.zeros((64, 64, 3), np.uint8))  # loads its graph now
            if self.config.detector.tile_streams:
                self._tile_detector = FaceDetector(self.detector.config)
                self._tile_detector.detect(np.zeros((64, 64, 3), np.uint8))

    def get(self, frame_bgr: np.ndarray) -> Detections:
        """Faces of the next frame of a stream, with stable ids and smoothed ages (the stage
        seconds of this frame are in ``timer.frame`` until the next one)."""
        self.timer.start_frame()
        with self.timer.stage("detect"):
            detections = self._detect_frame(frame_bgr, self.frame_index)
        return self._after_detection(frame_bgr, detections, self.detector)

    def _detect_frame(self, frame_bgr: np.ndarray, frame_index: int, companion: FaceDetector | None = None) -> Detections:
        """What needs no track: the whole frame, and the tile rotation's step for this frame (seen by
        ``companion`` at the same time, when given). With faces hidden, every frame is searched as a
        still is (every tile worth it), so a small face is hidden from its first frame, not once the
        rotation reaches it: slower, as privacy asks."""
        if self.annotator.config.blur_faces:
            return self.detector.detect_tiled(frame_bgr, frame_index)
        if self.config.detector.tile_streams:
            return self.detector.detect_with_tile(frame_bgr, frame_index, frame_index, companion)
        return self.detector.detect(frame_bgr, frame_index)

    def _after_detection(self, frame_bgr: np.ndarray, detections: Detections, region_detector: FaceDetector) -> Detections:
        """Search around missed tracks, then track, age and fuse: the rest of :meth:`get`."""
        with self.timer.stage("detect"):
            if self.config.detector.search_missed:
                detections = self._search_missed(frame_bgr, detections, region_detector)
        with self.timer.stage("track"):
            if self.tracker_config.appearance_weight > 0:
                describe_faces(frame_bgr, detections)
            if self.annotator.config.blur_faces:  # hidden too: faces too weak to show, and where tracks expect one
                self._remember_hidden(detections.frame_index, [detections.xyxy,
                                                               self.tracker.predicted_boxes(confirmed_only=False)[0]])
            detections = self.tracker.update_with_detections(detections)
            height, width = frame_bgr.shape[:2]
            detections.xyxy = np.clip(detections.xyxy, 0, [width, height, width, height])
        self.estimator.update_with_detections(frame_bgr, detections)  # times "crop" and "infer"
        with self.timer.stage("smooth"):
            self.fusion.update_with_detections(detections)  # the track's age and range
            self._set_verdicts(detections)
        self.frame_index += 1
        return detections

    def _search_missed(self, frame_bgr: np.ndarray, detections: Detections, detector: FaceDetector) -> Detections:
        """Add faces found around the tracks that this frame's detections do not cover (those
        unseen the shortest first, at most ``max_searches``)."""
        expected, missed = self.tracker.predicted_boxes(confirmed_only=False)
        if len(expected) and len(detections):
            uncovered = iou_matrix(expected, detections.xyxy).max(axis=1) < self.tracker_config.min_iou
            expected, missed = expected[uncovered], missed[uncovered]
        if not len(expected):
            return detections
        # The longer a track went unseen, the wider its region: its predicted place is less sure.
        order = np.argsort(missed)[: self.config.detector.max_searches]
        scales = np.minimum(2.2 + 0.3 * missed[order], 4.0)
        found = detector.detect_regions(frame_bgr, expected[order], self.frame_index, scales)
        return non_max_suppression(Detections.merge([detections, found])) if len(found) else detections

    def get_image(self, image_bgr: np.ndarray) -> Detections:
        """Faces of a still image, each estimated once; ids are 1..N in detection order."""
        if self.config.detector.tile_stills:
            detections = self.detector.detect_tiled(image_bgr)
        else:
            detections = self.detector.detect(image_bgr)
        if self.annotator.config.blur_faces:  # hidden too: faces found too weak to show
            self._remember_hidden(detections.frame_index, [detections.xyxy])
        detections = detections[detections.confidence >= self.start_confidence]
        detections.tracker_id[:] = np.arange(1, len(detections) + 1)
        faces = self.model.cut_faces(image_bgr, detections, self.estimator.crop)
        detections.raw_age[:] = self.model.predict(faces)
        detections.quality[:] = quality_of(self.view_quality.assess(detections, faces))
        detections.age[:] = detections.raw_age
        if self.age_range is not None and len(detections):
            detections.age_low[:], detections.age_high[:] = self.age_range.interval(detections.age)
        self._set_verdicts(detections)
        return detections

    def _set_verdicts(self, detections: Detections) -> None:
        """The age gate's verdict on each shown age, when a gate is set."""
        if self.gate is not None:
            self.gate.update_with_detections(detections)

    def annotate(self, frame_bgr: np.ndarray, detections: Detections, fps: float | None = None) -> np.ndarray:
        """A copy of the frame with boxes, ids and ages drawn (and, with ``blur_faces``, every face and
        every place one may be hidden)."""
        also_hide = self._also_hide.pop(detections.frame_index, None)
        with self.timer.stage("draw"):
            return self.annotator.annotate(frame_bgr, detections, fps, also_hide=also_hide)

    def _remember_hidden(self, frame_index: int, boxes: list) -> None:
        self._also_hide[frame_index] = np.concatenate([np.asarray(b, np.float32).reshape(-1, 4) for b in boxes])
        for old in [i for i in self._also_hide if i < frame_index - 16]:  # frames never annotated
            del self._also_hide[old]

    def close(self) -> None:
        self.detector.close()
        for extra in (self._region_detector, self._tile_detector):
            if extra is not None:
                extra.close()

    def __enter__(self) -> "AgeCam":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
