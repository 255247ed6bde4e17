"""The plain install (``pip install agecam``, no extra) runs the camera, video and image commands
without TensorFlow, Keras, Streamlit, FastAPI, Ray or pandas; a command that needs an extra says in
one line which one to install.

The plain install is made from this environment without downloading anything: a fresh venv sees
only the distributions that setup.cfg's ``install_requires`` pulls in (followed through their own
requirements, as pip resolves them), linked from this environment's site folder, and the wheel."""

import configparser
import importlib.metadata as metadata
import os
import subprocess
import sys
import sysconfig

import pytest
from packaging.requirements import Requirement

from conftest import REPO
from test_install import wheel  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow
EXTRA_ONLY = ("tensorflow", "keras", "streamlit", "streamlit_webrtc", "fastapi", "uvicorn", "ray", "pandas", "onnx")


def requirements(extra: str | None = None) -> list[str]:
    """setup.cfg's requirements: ``install_requires``, or an extra's."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    text = config["options"]["install_requires"] if extra is None else config["options.extras_require"][extra]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def closure(wanted: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that ``wanted`` needs, their own requirements followed (no extras)."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(wanted)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = requirement.name.lower().replace("_", "-")
        if key in found:
            continue
        found[key] = metadata.distribution(requirement.name)
        todo += found[key].requires or []
    return found


def size_mb(distributions) -> float:
    files = [d.locate_file(f) for d in distributions for f in (d.files or [])]
    return sum(os.path.getsize(f) for f in files if os.path.isfile(f)) / 1e6


def plain_site(folder) -> None:
    """Link into ``folder`` every top-level name of the plain install's distributions."""
    site = sysconfig.get_paths()["purelib"]
    for distribution in closure(requirements()).values():
        for top in {str(f).split("/")[0] for f in distribution.files or []} - {"..", "bin"}:
            source = os.path.join(site, top)
            if os.path.exists(source) and not os.path.exists(folder / top):
                os.symlink(source, folder / top)


@pytest.fixture(scope="module")
def plain_python(tmp_path_factory, wheel):  # noqa: F811 (the fixture)
    root = tmp_path_factory.mktemp("plain")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dependencies = root / "dependencies"
    dependencies.mkdir()
    plain_site(dependencies)
    (venv / site.split(str(venv) + "/", 1)[1] / "plain-dependencies.pth").write_text(str(dependencies) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    return python


def _agecam(python, *args, cwd):
    return subprocess.run([str(python), "-m", "agecam", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_the_plain_install_has_no_extra_package(plain_python, tmp_path):
    code = ("import importlib.util as u; missing = [n for n in %r if u.find_spec(n) is None]; print(len(missing))"
            % (EXTRA_ONLY,))
    done = subprocess.run([str(plain_python), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == str(len(EXTRA_ONLY)), done.stderr


def test_the_plain_install_runs_image_video_and_the_demo(plain_python, tmp_path, astronaut_png):
    image = _agecam(plain_python, "image", astronaut_png, "--json", cwd=tmp_path)
    assert image.returncode == 0 and '"age"' in image.stdout, image.stderr
    demo = _agecam(plain_python, "demo", "--out", tmp_path / "demo", cwd=tmp_path)
    assert demo.returncode == 0 and '"frames": 60' in demo.stdout, demo.stderr
    video = _agecam(plain_python, "video", tmp_path / "demo" / "astronaut.mp4", "--no-window", "--csv",
                    tmp_path / "faces.csv", "--report", tmp_path / "report", cwd=tmp_path)
    assert video.returncode == 0, video.stderr
    assert (tmp_path / "faces.csv").stat().st_size > 0 and (tmp_path / "report" / "report.html").is_file()


@pytest.mark.parametrize("command, extra", [(("web",), "web"), (("serve",), "serve"),
                                            (("train", "--data", "."), "train"), (("track-test", "--data", "."), "train"),
                                            (("image", "photo.jpg", "--runtime", "keras"), "train")])
def test_a_command_that_needs_an_extra_names_it_in_one_line(plain_python, tmp_path, astronaut_png, command, extra):
    if "photo.jpg" in command:
        (tmp_path / "photo.jpg").write_bytes(astronaut_png.read_bytes())
    done = _agecam(plain_python, *command, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and f"pip install 'agecam[{extra}]'" in done.stderr, done.stderr


def test_the_plain_install_is_a_fraction_of_all():
    plain = size_mb(closure(requirements()).values())
    everything = size_mb(closure(requirements() + requirements("all")).values())
    assert plain < everything / 2, (plain, everything)


if __name__ == "__main__":  # python tests/test_plain_install.py: the sizes docs/development.md reports
    print(f"plain install {size_mb(closure(requirements()).values()):.0f} MB, "
          f"[all] {size_mb(closure(requirements() + requirements('all')).values()):.0f} MB")
