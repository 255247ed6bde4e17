"""Import MediaPipe without the TensorFlow and JAX it does not need.

``mediapipe/__init__`` imports its tasks package, which tries ``from tensorflow.tools.docs import
doc_controls`` (used only to build MediaPipe's API documentation) and falls back to a no-op when
TensorFlow is missing. Where TensorFlow is installed (agecam's training extra), that one line costs
every process 2-3 s and about 700 MB before the first frame. So while MediaPipe is imported, this
thread's imports of ``tensorflow``, ``jax`` and ``jaxlib`` fail with ``ModuleNotFoundError`` (the
fallback MediaPipe itself provides); other threads, and later imports, are untouched. Measured on
this project's machine: ``import mediapipe`` 3.5 s and 850 MB with TensorFlow installed, 0.5 s and
160 MB this way.

MediaPipe's drawing helpers (``mediapipe.python.solutions.drawing_utils``, imported by the package
whether used or not) import ``matplotlib.pyplot``, about 0.45 s of every start-up. agecam never
calls them, so while MediaPipe loads, ``matplotlib.pyplot`` is a stand-in that imports the real one
on its first use (MediaPipe's helpers would still work); once MediaPipe is in, the stand-in leaves
``sys.modules``, so any other ``import matplotlib.pyplot`` (the ``--report`` figures) gets the real
module. (``importlib.util.LazyLoader`` does not do: Python 3.11's import statement reads the lazy
module's ``__spec__`` and so loads it.)
"""

from __future__ import annotations

import importlib
import sys
import threading
import types

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
        stand_in = _stand_in("matplotlib.pyplot")
        try:
            import mediapipe
        finally:
            sys.meta_path.remove(finder)
            if stand_in is not None and sys.modules.get("matplotlib.pyplot") is stand_in:
                del sys.modules["matplotlib.pyplot"]
        return mediapipe


class _OnFirstUse(types.ModuleType):
    """A stand-in for a module that is imported for real when one of its names is first read."""

    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def _stand_in(name: str):
    """Put a stand-in for ``name`` in ``sys.modules`` unless it is loaded already; the stand-in or None."""
    if name in sys.modules:
        return None
    sys.modules[name] = stand_in = _OnFirstUse(name)
    return stand_in
