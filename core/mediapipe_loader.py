"""Import MediaPipe without the TensorFlow and JAX it does not need.

``mediapipe/__init__`` imports its tasks package, which tries ``from tensorflow.tools.docs import
doc_controls`` (used only to build MediaPipe's API documentation) and falls back to a no-op when
TensorFlow is missing. Where TensorFlow is installed (agecam's training extra), that one line costs
every process 2-3 s and about 700 MB before the first frame. So while MediaPipe is imported, this
thread's imports of ``tensorflow``, ``jax`` and ``jaxlib`` fail with ``ModuleNotFoundError`` (the
fallback MediaPipe itself provides); other threads, and later imports, are untouched. Measured on
this project's machine: ``import mediapipe`` 3.5 s and 850 MB with TensorFlow installed, 0.5 s and
160 MB this way.
"""

from __future__ import annotations

import sys
import threading

_HIDDEN = ("tensorflow", "jax", "jaxlib")
_LOCK = threading.Lock()


class _HideFromThisThread:
    """A ``sys.meta_path`` finder refusing the hidden packages to one thread."""

    def __init__(self):
        self.thread = threading.get_ident()

    def find_spec(self, name, path=None, target=None):
        if threading.get_ident() == self.thread and name.partition(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden while MediaPipe loads)", name=name)
        return None


def import_mediapipe():
    """The ``mediapipe`` module, imported without TensorFlow or JAX unless they are already loaded."""
    if "mediapipe" in sys.modules:
        return sys.modules["mediapipe"]
    with _LOCK:
        if any(name in sys.modules for name in _HIDDEN):  # already paid for: nothing to save
            import mediapipe
            return mediapipe
        finder = _HideFromThisThread()
        sys.meta_path.insert(0, finder)
        try:
            import mediapipe
        finally:
            sys.meta_path.remove(finder)
        return mediapipe
