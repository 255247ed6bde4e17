"""agecam's core: detect, track, age and draw faces. The public API, importable from ``core``::

    import cv2
    from core import AgeCam, AgeCamConfig

    cam = AgeCam(AgeCamConfig(model="cnn"))
    faces = cam.get_image(cv2.imread("photo.jpg"))   # Detections: xyxy, confidence, age, ...

Names load on first use (PEP 562), so ``import core`` alone loads no native library.
"""

from importlib import import_module

_PUBLIC = {
    "AgeCam": "core.analyzer", "AgeCamConfig": "core.analyzer",
    "Detections": "core.detections",
    "AgeModel": "core.age_model", "ModelError": "core.age_model", "available_models": "core.age_model",
    "default_model_name": "core.age_model",
    "FaceDetector": "core.detector", "DetectorConfig": "core.config",
    "FaceTracker": "core.tracker", "TrackerConfig": "core.tracker",
    "AgeEstimator": "core.estimator", "EstimatorConfig": "core.config",
    "AgeSmoother": "core.smoothing", "SmootherConfig": "core.smoothing",
    "AgeAnnotator": "core.annotator", "AnnotatorConfig": "core.annotator",
    "ImageError": "core.images", "read_image_file": "core.images", "decode_image": "core.images",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)


def __dir__():
    return __all__
