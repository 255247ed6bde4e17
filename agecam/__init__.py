"""agecam: real-time apparent-age estimation for every face in cameras, videos, streams and images.

One import package. ``agecam.core`` (detect, track, age, draw), ``agecam.realtime`` (sources, sinks,
runs), ``agecam.training`` and ``agecam.webapp`` are its subpackages, and ``agecam.cli`` is the
command line that wires them (``python -m agecam``)::

    import cv2
    from agecam import AgeCam, AgeCamConfig

    cam = AgeCam(AgeCamConfig(model="cnn"))
    faces = cam.get_image(cv2.imread("photo.jpg"))   # Detections: xyxy, confidence, age, ...

The repository keeps the design card's layout (``core/``, ``realtime/``, ``training/``,
``webapp/``, ``models/``, ``assets/`` beside this folder); setup.cfg's ``package_dir`` maps those
folders into this package when it is built, so an installed agecam holds them inside it. In a
checkout that was not installed they are found beside it (below). The public names load on first
use (PEP 562): ``import agecam`` loads no native library.
"""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
if not (_HERE / "core").is_dir() and (_HERE.parent / "core" / "__init__.py").is_file():
    # A checkout: agecam.core is <checkout>/core, agecam.models is <checkout>/models, ...
    __path__.append(str(_HERE.parent))  # noqa: F821 (a package's __path__)


def __getattr__(name: str):
    from agecam import core

    if name in core.__all__:
        return getattr(core, name)
    raise AttributeError(f"module 'agecam' has no attribute {name!r}")


def __dir__():
    from agecam import core

    return sorted(core.__all__)
