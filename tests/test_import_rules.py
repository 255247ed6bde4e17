"""The packages' import directions (the design card): ``agecam.core`` imports none of ours;
``agecam.realtime``, ``agecam.training`` and ``agecam.webapp`` import ``agecam.core`` only; the command
line (``agecam.cli``, ``agecam.commands`` and the rest of ``agecam/``) may import them all. Our code is
imported only under the one top-level name ``agecam``: within a folder relatively (``from .tracker
import FaceTracker`` in core/), across folders as ``agecam.core.x``. Read from the files, as a static
tool or an editor reads them, without installing anything."""

import ast

import pytest

from conftest import REPO

OURS = {"agecam", "core", "realtime", "training", "webapp"}
SUBPACKAGES = OURS - {"agecam"}
ALLOWED = {"core": {"core"}, "realtime": {"core", "realtime"}, "training": {"core", "training"},
           "webapp": {"core", "webapp"}, "agecam": OURS}


def _package_of(module: str) -> str:
    """Which of our packages a module name belongs to: ``agecam.core.x`` -> ``core``; ``agecam.cli``
    -> ``agecam``; a bare ``core.x`` (the old top-level names) -> ``core``, so the next test catches it."""
    parts = module.split(".")
    if parts[0] == "agecam":
        return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else "agecam"
    return parts[0]


def _package_name(path) -> str:
    """The installed package a file of the checkout belongs to: core/x.py -> agecam.core,
    webapp/views/x.py -> agecam.webapp.views, agecam/commands/x.py -> agecam.commands."""
    folder = path.parent.relative_to(REPO).parts
    return ".".join(folder) if folder[:1] == ("agecam",) else ".".join(("agecam",) + folder)


def _absolute(node, path) -> str | None:
    """The absolute module of an ``ImportFrom`` (``from .x import y`` in core/ -> ``agecam.core.x``)."""
    if node.level == 0:
        return node.module
    base = _package_name(path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported_packages(path):
    """Our packages that a file imports, anywhere in it (function-level imports too), relative
    imports resolved as an installed agecam resolves them."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {_package_of(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (module := _absolute(node, path)):
            if module == "agecam":  # from agecam import core
                found |= {_package_of(f"agecam.{alias.name}") for alias in node.names}
            else:
                found.add(_package_of(module))
    return found & OURS


def _bare_imports(path):
    """Imports of our subpackages under their old top-level names (``from core.x import y``)."""
    bare = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
        bare |= {name for name in names if name.split(".")[0] in SUBPACKAGES}
    return bare


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_design(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    wrong = {str(path.relative_to(REPO)): sorted(_imported_packages(path) - ALLOWED[package]) for path in files}
    assert not {name: bad for name, bad in wrong.items() if bad}


def test_the_rule_sees_a_violation(tmp_path):
    stray = tmp_path / "stray.py"
    stray.write_text("def f():\n    from agecam.training.evaluation.report import load_cards\n    from agecam import webapp\n")
    assert _imported_packages(stray) == {"training", "webapp"}
    inside = REPO / "core" / "stray.py"  # not written: only its place in the tree is read
    assert _absolute(ast.parse("from .tracker import FaceTracker").body[0], inside) == "agecam.core.tracker"
    assert _absolute(ast.parse("from ..realtime import runner").body[0], inside) == "agecam.realtime"
    stray.write_text("from core.paths import REPO_ROOT\n")
    assert _bare_imports(stray) == {"core.paths"}


def test_within_a_folder_imports_are_relative():
    """The file tree is the import tree: a module of the same folder is imported as ``.name``."""
    absolute = []
    for package in sorted(SUBPACKAGES) + ["agecam"]:
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "webapp" / "app.py":  # run by Streamlit as a script, outside any package
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    parts = node.module.split(".")
                    if parts[:-1] == _package_name(path).split(".") and (path.parent / f"{parts[-1]}.py").is_file():
                        absolute.append(f"{path.relative_to(REPO)}: from {node.module}")
    assert not absolute


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_our_code_is_imported_under_the_one_top_level_name(package):
    files = sorted((REPO / package).rglob("*.py")) + (sorted((REPO / "tests").glob("*.py")) if package == "agecam" else [])
    assert not {str(path.relative_to(REPO)): sorted(_bare_imports(path)) for path in files if _bare_imports(path)}


def test_core_public_api_is_importable_from_core_and_lazy():
    import subprocess
    import sys

    code = ("import sys, agecam, agecam.core as core; assert 'cv2' not in sys.modules; "
            "from agecam.core import AgeCam, AgeCamConfig, Detections, AgeModel, ModelError, ImageError; "
            "import agecam.core.analyzer; assert core.AgeCam is agecam.core.analyzer.AgeCam; "
            "from agecam import AgeCam as Top, AgeCamConfig; assert Top is AgeCam; "
            "assert set(core.__all__) >= {'AgeCam', 'Detections', 'AgeModel'}")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_cli_defaults_are_the_configs_own_and_loading_the_cli_loads_no_native_library():
    import subprocess
    import sys

    from agecam.cli import main
    from agecam.core.config import RUNTIMES, DetectorConfig, EstimatorConfig

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


def test_the_card_module_only_reads_and_writes_cards():
    """No import cycle: ``core.model_card`` needs only the atomic writer and the layout."""
    tree = ast.parse((REPO / "core" / "model_card.py").read_text())
    card = REPO / "core" / "model_card.py"
    ours = {_absolute(node, card) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and (_absolute(node, card) or "").startswith("agecam")}
    assert ours == {"agecam.core.atomic", "agecam.core.paths"}
