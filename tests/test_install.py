"""An installed wheel finds its models, figures and web app the way a checkout does."""

import subprocess
import sys
import sysconfig

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_a_wheel_installed_elsewhere_runs_agecam_image_from_another_folder(tmp_path, astronaut_png):
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                            "-w", str(wheels)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # The test environment's packages (TensorFlow, MediaPipe, ...) under the fresh venv's own ones;
    # this venv's site folder comes first, so its agecam is the wheel's, not the checkout's.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (venv / site.split(str(venv) + "/", 1)[1] / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              str(next(wheels.glob("agecam-*.whl")))], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    where = subprocess.run([str(python), "-c", "import core.paths as p, webapp; print(p.SHIPPED_MODELS, p.ASSETS_DIR, "
                            "webapp.__file__)"], cwd=elsewhere, capture_output=True, text=True, check=True).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where  # nothing taken from the checkout
    image = subprocess.run([str(python), "-m", "agecam", "image", str(astronaut_png), "--json"], cwd=elsewhere,
                           capture_output=True, text=True, timeout=300)
    assert image.returncode == 0, image.stderr
    assert '"age"' in image.stdout and "Traceback" not in image.stderr
    pages = subprocess.run([str(python), "-c", "import pathlib, webapp; "
                            "print(sorted(p.name for p in (pathlib.Path(webapp.__file__).parent / 'views').glob('*.py')))"],
                           cwd=elsewhere, capture_output=True, text=True, check=True).stdout
    assert all(page in pages for page in ("live.py", "image.py", "performance.py"))
