"""The packages' import directions (the design card): ``core`` imports none of ours; ``realtime``,
``training`` and ``webapp`` import ``core`` only; the ``agecam`` command line may import them all."""

import ast

import pytest

from conftest import REPO

OURS = {"agecam", "core", "realtime", "training", "webapp"}
ALLOWED = {"core": {"core"}, "realtime": {"core", "realtime"}, "training": {"core", "training"},
           "webapp": {"core", "webapp"}, "agecam": OURS}


def _imported_packages(path):
    """Our top-level packages that a file imports, anywhere in it (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_design(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    wrong = {str(path.relative_to(REPO)): sorted(_imported_packages(path) - ALLOWED[package]) for path in files}
    assert not {name: bad for name, bad in wrong.items() if bad}


def test_the_rule_sees_a_violation(tmp_path):
    stray = tmp_path / "stray.py"
    stray.write_text("def f():\n    from training.report import load_cards\n")
    assert _imported_packages(stray) == {"training"}


def test_core_public_api_is_importable_from_core_and_lazy():
    import subprocess
    import sys

    code = ("import sys, core; assert 'cv2' not in sys.modules; "
            "from core import AgeCam, AgeCamConfig, Detections, AgeModel, ModelError, ImageError; "
            "import core.analyzer; assert core.AgeCam is core.analyzer.AgeCam; "
            "assert set(core.__all__) >= {'AgeCam', 'Detections', 'AgeModel'}")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_cli_defaults_are_the_configs_own_and_loading_the_cli_loads_no_native_library():
    import subprocess
    import sys

    from agecam.cli import main
    from core.config import RUNTIMES, DetectorConfig, EstimatorConfig

    expected = {"confidence": DetectorConfig().min_confidence, "detector_range": DetectorConfig().range,
                "refresh_every": EstimatorConfig().refresh_every, "runtime": RUNTIMES[0],
                "small_faces": DetectorConfig().tile_streams}
    seen = 0
    for command in main.commands.values():
        for param in command.params:
            if param.name in expected:
                assert param.default == expected[param.name], (command.name, param.name)
                seen += 1
    assert seen >= 10
    done = subprocess.run([sys.executable, "-c", "import sys, agecam.cli; assert 'cv2' not in sys.modules"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
