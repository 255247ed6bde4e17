"""An installed wheel is one import package, ``agecam``, and finds its models, figures and web app
in every install style: a venv, ``pip install --target``, ``pip install --user``."""

import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow
TEST_SITE = sysconfig.get_paths()["purelib"]  # TensorFlow, MediaPipe, ... for the installed copies


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    wheels = tmp_path_factory.mktemp("wheels")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                            "-w", str(wheels)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    return next(wheels.glob("agecam-*.whl"))


def test_the_wheel_installs_one_top_level_package_with_its_models_and_figures(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"agecam"}
    assert not any(name.split("/")[0].endswith(".data") for name in names), "no data_files outside the package"
    for expected in ("agecam/core/analyzer.py", "agecam/realtime/runner.py", "agecam/training/splits/utkface.csv",
                     "agecam/webapp/views/live.py", "agecam/models/ensemble.json", "agecam/models/cnn.onnx"):
        assert expected in names


def _run_from_elsewhere(python, elsewhere, astronaut_png, prefix, env=None):
    """``agecam image`` and the package's own paths, run from a folder outside the checkout."""
    where = subprocess.run([str(python), "-c", "import agecam.core.paths as p, agecam.webapp as w; "
                            "print(p.SHIPPED_MODELS, p.ASSETS_DIR, w.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(prefix)) for path in where.stdout.split()), where.stdout  # not the checkout's
    image = subprocess.run([str(python), "-m", "agecam", "image", str(astronaut_png), "--json"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=300)
    assert image.returncode == 0, image.stderr
    assert '"age"' in image.stdout and "Traceback" not in image.stderr
    pages = subprocess.run([str(python), "-c", "import pathlib, agecam.webapp as w; "
                            "print(sorted(p.name for p in (pathlib.Path(w.__file__).parent / 'views').glob('*.py')))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert all(page in pages for page in ("live.py", "image.py", "performance.py"))


def test_a_venv_install_runs_agecam_image_from_another_folder(tmp_path, wheel, astronaut_png):
    venv, elsewhere = tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # The test environment's packages under the fresh venv's own ones; this venv's site folder comes
    # first, so its agecam is the wheel's, not the checkout's.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (venv / site.split(str(venv) + "/", 1)[1] / "test-environment.pth").write_text(TEST_SITE + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    _run_from_elsewhere(python, elsewhere, astronaut_png, venv)


def test_a_target_install_runs_agecam_image_from_another_folder(tmp_path, wheel, astronaut_png):
    target, elsewhere = tmp_path / "target", tmp_path / "elsewhere"
    elsewhere.mkdir()
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the test environment's editable agecam
    _run_from_elsewhere(sys.executable, elsewhere, astronaut_png, target, env)


def test_a_user_install_runs_agecam_image_from_another_folder(tmp_path, wheel, astronaut_png):
    # A user install needs a Python outside any venv: the one this venv was made from.
    base = getattr(sys, "_base_executable", sys.executable)
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests run outside a venv: a --user install would go into the real user site")
    userbase, elsewhere = tmp_path / "userbase", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONNOUSERSITE"}, "PYTHONUSERBASE": str(userbase)}
    install = subprocess.run([base, "-m", "pip", "install", "-q", "--user", "--no-deps", "--no-warn-script-location",
                              str(wheel)], env=env, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    user_site = subprocess.run([base, "-c", "import site; print(site.getusersitepackages())"], env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
    assert user_site.startswith(str(userbase))
    # The test environment's packages after the user site (a .pth line adds a folder, not its .pth files,
    # so the checkout's editable agecam stays out).
    (userbase / user_site.split(str(userbase) + "/", 1)[1] / "test-environment.pth").write_text(TEST_SITE + "\n")
    _run_from_elsewhere(base, elsewhere, astronaut_png, userbase, env)
