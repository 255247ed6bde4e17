"""UTKFace's file names, ``AGE_GENDER_RACE_DATETIME.jpg[.chip.jpg]``: the one parser of the labels they carry."""

from __future__ import annotations

import re

_NAME = re.compile(r"^(\d+)_([01])_([0-4])_(\d+)\.[A-Za-z]+(?:\.chip\.jpg)?$")


def parse_name(name: str) -> tuple[int, int, int] | None:
    """Return ``(age, gender, race)`` from a UTKFace file name, or None when it is malformed.

    >>> parse_name("26_1_2_20170116174525125.jpg.chip.jpg")
    (26, 1, 2)
    >>> parse_name("61_1_20170109142408075.jpg.chip.jpg") is None
    True
    """
    match = _NAME.match(name)
    if not match:
        return None
    age, gender, race = (int(match.group(i)) for i in (1, 2, 3))
    return age, gender, race
