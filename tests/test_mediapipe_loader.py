"""MediaPipe is imported without what it does not need at start-up: TensorFlow and JAX (when the
train extra installed them) and matplotlib's pyplot (its drawing helpers' import); each still works
for whoever uses it later."""

import subprocess
import sys

from conftest import REPO


def test_mediapipe_loads_without_tensorflow_jax_or_pyplot_and_pyplot_still_works():
    code = """
import sys
from agecam.core.mediapipe_loader import import_mediapipe
mediapipe = import_mediapipe()
assert mediapipe.solutions.face_detection is not None
loaded = [name for name in ("tensorflow", "jax", "matplotlib.pyplot") if name in sys.modules]
assert not loaded, loaded
import matplotlib.pyplot as plt                      # a later user gets the real module
assert type(plt).__name__ == "module" and callable(plt.figure)
from mediapipe.python.solutions import drawing_utils  # MediaPipe's own helper reaches it too
assert drawing_utils.plt.figure is plt.figure
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
