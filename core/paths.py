"""Where the checkout keeps things: shipped models, training figures, and the shared data beside it.

The one place that knows the layout; everything else asks here (and users override the model
folder with ``$AGECAM_MODELS``, the web app's examples with ``$AGECAM_UTKFACE_DIR``).
"""

from pathlib import Path

# The folder holding core/, models/, assets/, webapp/...: the checkout, or the installed agecam
# package, where setup.cfg's package_dir puts the same folders (models and figures are package
# data). One expression serves a checkout, an editable install, pip install ., --user and --target.
REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = REPO_ROOT / "models"
ASSETS_DIR = REPO_ROOT / "assets"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
UTKFACE_CROP_PART1 = SHARED_DATA / "utkface-crop-part1"  # the 8,780-face subset (examples, generated scenes)
UTKFACE_FULL = SHARED_DATA / "utkface"  # all 22,107 faces (training)
