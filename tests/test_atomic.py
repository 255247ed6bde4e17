"""agecam.core.atomic: a file is replaced whole or left as it was."""

import pytest

from agecam.core.atomic import atomic_path, temporary_name, write_text_atomic


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


def test_stale_partials_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    import os
    import subprocess

    from agecam.core.atomic import atomic_path, remove_stale_partials

    child = subprocess.Popen(["true"])
    child.wait()  # its pid now belongs to no writer
    stale = tmp_path / f".model.partial-{child.pid}.keras"
    live = tmp_path / f".model.partial-{os.getppid()}.keras"  # our parent runs: a live writer's file
    other = tmp_path / f".other.partial-{child.pid}.keras"
    for path in (stale, live, other):
        path.write_text("half")
    assert remove_stale_partials(tmp_path / "model.keras") == [stale]
    assert live.exists() and other.exists() and not stale.exists()
    stale.write_text("half")
    with atomic_path(tmp_path / "model.keras") as tmp:  # every atomic write cleans up first
        tmp.write_text("whole")
    assert not stale.exists() and (tmp_path / "model.keras").read_text() == "whole"
