import cv2
import numpy as np
import pytest

from agecam.training.data import DataError, load_arrays, parse_name, read_image, scan_folder


def _write(folder, name, image):
    assert cv2.imwrite(str(folder / name), image)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("26_1_2_20170116174525125.jpg.chip.jpg", (26, 1, 2)),
        ("1_0_0_20161219140623097.jpg", (1, 0, 0)),
        ("61_1_20170109142408075.jpg.chip.jpg", None),  # a field missing, as in the real data
        ("61_3_20170109150557335.jpg.chip.jpg", None),
        ("abc_1_2_2017.jpg", None),
        ("30_2_1_2017.jpg", None),  # gender must be 0 or 1
        ("30_1_7_2017.jpg", None),  # race must be 0..4
    ],
)
def test_parse_name(name, expected):
    assert parse_name(name) == expected


def test_scan_skips_and_counts_bad_files(tmp_path):
    face = np.full((200, 200, 3), 128, np.uint8)
    _write(tmp_path, "30_0_1_20170101000000000.jpg.chip.jpg", face)
    _write(tmp_path, "8_1_2_20170101000000001.jpg.chip.jpg", cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    _write(tmp_path, "50_1_3_20170101000000002.png", np.dstack([face, np.full((200, 200), 255, np.uint8)]))
    _write(tmp_path, "61_1_20170109142408075.jpg.chip.jpg", face)  # malformed name
    _write(tmp_path, "130_1_0_20170101000000003.jpg", face)  # age out of range
    (tmp_path / "40_0_0_20170101000000004.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")

    report = scan_folder(tmp_path)
    assert [r.age for r in report.records] == [30, 40, 50, 8]
    assert report.skipped == {"malformed name": 1, "age out of range": 1}

    images, ages, kept = load_arrays(report.records, 48, report)
    assert images.shape == (3, 48, 48, 3) and images.dtype == np.uint8
    assert sorted(ages.tolist()) == [8.0, 30.0, 50.0]
    assert report.skipped["unreadable image"] == 1
    assert "1 skipped (unreadable image)" in report.summary()


def test_read_image_returns_none_for_empty_and_garbage(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "garbage.jpg").write_bytes(b"garbage")
    assert read_image(tmp_path / "empty.jpg") is None
    assert read_image(tmp_path / "garbage.jpg") is None


def test_scan_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="no UTKFace-named images"):
        scan_folder(tmp_path)
    (tmp_path / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="no UTKFace-named images"):
        scan_folder(tmp_path)


def test_real_folder_skips_exactly_the_two_malformed_names(utk_dir):
    report = scan_folder(utk_dir)
    assert report.skipped == {"malformed name": 2}
    assert all(1 <= r.age <= 116 for r in report.records)
