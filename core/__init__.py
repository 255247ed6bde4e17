"""agecam's core: detect, track, age and draw faces. The public API, importable from ``core``::

    import cv2
    from agecam.core import AgeCam, AgeCamConfig

    cam = AgeCam(AgeCamConfig(model="cnn"))
    faces = cam.get_image(cv2.imread("photo.jpg"))   # Detections: xyxy, confidence, age, ...

Names load on first use (PEP 562), so ``import core`` alone loads no native library.
"""

from importlib import import_module

_PUBLIC = {
    "AgeCam": "agecam.core.analyzer", "AgeCamConfig": "agecam.core.analyzer",
    "Detections": "agecam.core.detections",
    "AgeModel": "agecam.core.age_model", "ModelError": "agecam.core.age_model", "available_models": "agecam.core.age_model",
    "default_model_name": "agecam.core.age_model",
    "FaceDetector": "agecam.core.detector", "DetectorConfig": "agecam.core.config",
    "FaceTracker": "agecam.core.tracker", "TrackerConfig": "agecam.core.tracker",
    "AgeEstimator": "agecam.core.estimator", "EstimatorConfig": "agecam.core.config",
    "TrackAgeFusion": "agecam.core.fusion", "FusionConfig": "agecam.core.fusion",
    "ViewQuality": "agecam.core.quality",
    "AgeAnnotator": "agecam.core.annotator", "AnnotatorConfig": "agecam.core.annotator",
    "ImageError": "agecam.core.images", "read_image_file": "agecam.core.images", "decode_image": "agecam.core.images",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)


def __dir__():
    return __all__
