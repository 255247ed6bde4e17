"""One stream loop (core.stream.StreamSession): the runner and the live web page go through it, so
the same frames give the same people; the people are computed once per frame, the rate measured once."""

import numpy as np
import pytest

from agecam.core.detections import Detections
from agecam.core.stream import StreamSession

TIME_FIELDS = {"first_s", "last_s", "seconds_seen"}  # the live page's clock is the wall clock


class _Cam:
    """What a StreamSession asks of a pipeline, with a fixed face per frame."""

    age_range = gate = None

    def __init__(self):
        from agecam.core.annotator import AgeAnnotator

        self.annotator = AgeAnnotator()
        self.timer = type("Timer", (), {"frame": {"detect": 0.01, "infer": 0.01}})()
        self.resets = 0

    def reset(self, fps):
        self.resets += 1

    def get(self, image):
        return Detections(xyxy=[[10, 10, 50, 50]], tracker_id=[1], raw_age=[30.0], age=[30.0])

    def annotate(self, image, faces, fps=None):
        return self.annotator.annotate(image, faces, fps)


def test_people_are_computed_once_per_frame_and_the_rate_once():
    cam = _Cam()
    session = StreamSession(cam, fps=25).start()
    calls = []
    people = session.log.people
    session.log.people = lambda *a, **k: calls.append(1) or people(*a, **k)
    image = np.zeros((80, 80, 3), np.uint8)
    for _ in range(3):
        annotated, faces = session.push(image)
        assert annotated.shape == image.shape and faces.tracker_id.tolist() == [1]
    first = session.people()
    assert session.people() is first and len(calls) == 1  # the table, the report, the summary: one computation
    session.record(image, cam.get(image), 1.0)
    assert session.people()[0]["frames"] == 4 and len(calls) == 2
    assert cam.resets == 1 and session.frames == 4 and 0 < session.rate


@pytest.mark.slow
def test_the_runner_and_the_live_page_give_the_same_people(tmp_path, astronaut_bgr):
    """A generated clip replayed through the window-less runner (with its people table) and through
    the live page's session, frame by frame: the same people, ids, frames, estimates, ages and ranges."""
    import cv2

    from agecam.core.age_model import AgeModel
    from agecam.core.analyzer import AgeCam, AgeCamConfig
    from agecam.realtime.people import read_people_csv
    from agecam.realtime.runner import RunConfig, run
    from agecam.realtime.sources import VideoSource
    from agecam.realtime.synthetic import SceneConfig, astronaut_face, write_scene
    from agecam.webapp.live import LiveSession

    face = astronaut_face()
    clip = write_scene(tmp_path / "clip.mp4", [face, cv2.flip(face, 1)], SceneConfig(frames=90, seed=3))
    table = tmp_path / "people.csv"
    model = AgeModel.load(None)
    with AgeCam(AgeCamConfig(), model=model) as cam, VideoSource(str(clip)) as source:
        summary = run(cam, source, RunConfig(show_window=False, people=table, handle_signals=False))
    by_runner = read_people_csv(table)
    live = LiveSession(model, confidence=AgeCamConfig().detector.min_confidence, show_fps=False)
    try:
        with VideoSource(str(clip)) as source:
            for frame in source:
                live.annotate(frame.image)
        _, by_live = live.people()
    finally:
        live.close()
    assert summary.frames == 90 and len(by_runner) >= 2

    def comparable(rows):
        return [{k: (str(v) if v is not None else "") for k, v in row.items() if k not in TIME_FIELDS} for row in rows]

    assert comparable(by_live) == comparable(by_runner)
