"""Where the checkout keeps things: shipped models, training figures, and the shared data beside it.

The one place that knows the layout; everything else asks here (and users override the model
folder with ``$AGECAM_MODELS``, the web app's examples with ``$AGECAM_UTKFACE_DIR``).
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# In a checkout (or an editable install) models/ and assets/ sit beside the packages; an installed
# wheel puts them under <prefix>/share/agecam (setup.cfg's data_files).
INSTALLED_DATA = Path(sys.prefix) / "share" / "agecam"
IN_CHECKOUT = (REPO_ROOT / "models").is_dir()
SHIPPED_MODELS = (REPO_ROOT if IN_CHECKOUT else INSTALLED_DATA) / "models"
ASSETS_DIR = (REPO_ROOT if IN_CHECKOUT else INSTALLED_DATA) / "assets"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
UTKFACE_CROP_PART1 = SHARED_DATA / "utkface-crop-part1"  # the 8,780-face subset (examples, generated scenes)
UTKFACE_FULL = SHARED_DATA / "utkface"  # all 22,107 faces (training)
