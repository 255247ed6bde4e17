"""core.atomic: a file is replaced whole or left as it was."""

import pytest

from core.atomic import atomic_path, temporary_name, write_text_atomic


def test_write_text_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "card.json"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_failed_write_leaves_original_and_no_temporary(tmp_path):
    target = tmp_path / "plot.png"
    target.write_text("original")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert target.read_text() == "original"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_temporary_name_is_hidden_sibling_with_same_suffix(tmp_path):
    tmp = temporary_name(tmp_path / "out.mp4")
    assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp.name.startswith(".")
