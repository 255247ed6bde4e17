import cv2
import numpy as np
import pytest

from agecam.realtime.sinks import CSV_COLUMNS, CsvSink, VideoSink
from agecam.realtime.sources import SourceError, VideoSource, describe_source


def _frames(n, size=(160, 120)):
    for i in range(n):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.putText(frame, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        yield frame


def _decoded(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    return frames


def _count(path):
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n


def test_video_sink_appears_only_when_finalised(tmp_path):
    path = tmp_path / "out.mp4"
    with VideoSink(path, 25, (160, 120)) as sink:
        for frame in _frames(12):
            sink.write(frame)
        assert not path.exists()
    assert _count(path) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_video_sink_keeps_processed_frames_on_interrupt(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoSink(path, 25, (160, 120)) as sink:
            for i, frame in enumerate(_frames(20)):
                if i == 7:
                    raise KeyboardInterrupt
                sink.write(frame)
    assert _count(path) == 7


def test_video_sink_without_frames_leaves_nothing(tmp_path):
    with VideoSink(tmp_path / "out.mp4", 25, (160, 120)):
        pass
    assert list(tmp_path.iterdir()) == []


def test_video_sink_rejects_bad_targets(tmp_path):
    with pytest.raises(ValueError, match="unsupported video type"):
        VideoSink(tmp_path / "out.txt", 25, (160, 120))
    with pytest.raises(FileNotFoundError):
        VideoSink(tmp_path / "nope" / "out.mp4", 25, (160, 120))


def test_csv_sink_schema_and_atomicity(tmp_path):
    from agecam.core.detections import Detections

    path = tmp_path / "faces.csv"
    with CsvSink(path) as sink:
        sink.write(0, 0.0, Detections(xyxy=[[1, 2, 11, 22]], tracker_id=[3], age=[40.26], age_low=[33.04],
                                      age_high=[49.96], verdict=[1], quality=[0.8123]))
        sink.write(1, 0.033, Detections(xyxy=[[1, 2, 11, 22]], tracker_id=[3], age=[np.nan], detected=[False]))
        sink.write(2, 0.067, Detections(xyxy=[[1, 2, 11, 22]], tracker_id=[3], age=[41.0], age_low=[28.0],
                                        age_high=[55.0], age_shown=[False]))  # range on screen
        assert not path.exists()
    lines = path.read_text().splitlines()
    # New columns come last, so the earlier columns keep their places.
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert lines[0] == "frame,time_s,track_id,x,y,w,h,age,age_low,age_high,detected,age_gate,quality,age_shown"
    assert lines[1] == "0,0.000,3,1.0,2.0,10.0,20.0,40.3,33.0,50.0,1,over,0.812,1"
    assert lines[2] == "1,0.033,3,1.0,2.0,10.0,20.0,,,,0,,,0"  # nothing known: nothing shown
    assert lines[3] == "2,0.067,3,1.0,2.0,10.0,20.0,41.0,28.0,55.0,1,,,0"


def test_describe_source():
    assert describe_source("0") == ("camera", 0)
    assert describe_source("rtsp://cam.local/stream") == ("url", "rtsp://cam.local/stream")
    assert describe_source("clip.mp4") == ("file", "clip.mp4")


def test_file_source_reads_every_frame(tmp_path):
    path = tmp_path / "clip.mp4"
    with VideoSink(path, 30, (160, 120)) as sink:
        for frame in _frames(15):
            sink.write(frame)
    with VideoSource(str(path)) as source:
        frames = list(source)
    assert [f.index for f in frames] == list(range(15))
    assert (source.width, source.height, round(source.fps)) == (160, 120, 30)
    assert source.failed is None


def test_source_errors(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        VideoSource(str(tmp_path / "missing.mp4"))
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    with pytest.raises(SourceError):
        VideoSource(str(text))
    with pytest.raises(SourceError, match="cannot open camera"):
        VideoSource("57")


def test_csv_sink_on_a_full_disk_leaves_no_file_and_says_so(tmp_path, monkeypatch):
    import errno

    from agecam.core.detections import Detections

    path = tmp_path / "faces.csv"
    sink = CsvSink(path)
    sink.write(0, 0.0, Detections(xyxy=[[1, 2, 11, 22]], tracker_id=[3], age=[40.0]))
    real_close = sink._handle.close

    def full_disk():
        real_close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sink._handle, "close", full_disk)
    with pytest.raises(OSError, match="could not finish writing .*No space left"):
        sink.close()
    assert list(tmp_path.iterdir()) == []  # neither the CSV nor its temporary file


def test_csv_sink_writes_special_files_in_place(tmp_path):
    import os
    import stat

    from agecam.core.detections import Detections

    with pytest.raises(OSError, match="could not finish writing /dev/full"):
        with CsvSink("/dev/full") as sink:
            sink.write(0, 0.0, Detections(xyxy=[[1, 2, 11, 22]], tracker_id=[3], age=[40.0]))
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # still the device, not a regular file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    with CsvSink(fifo) as sink:
        sink.write(0, 0.0, Detections(xyxy=[[1, 2, 11, 22]], tracker_id=[3], age=[40.0]))
    assert os.read(reader, 4096).decode().startswith("frame,time_s")
    os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_video_sink_that_cannot_finish_leaves_no_file(tmp_path, monkeypatch):
    import agecam.realtime.sinks as sinks

    monkeypatch.setattr(sinks, "_frame_count", lambda path: 0)  # what a full disk leaves: frames missing
    sink = VideoSink(tmp_path / "out.mp4", 25, (160, 120))
    sink.write(np.zeros((120, 160, 3), np.uint8))
    with pytest.raises(OSError, match="could not finish writing"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_video_sink_encodes_on_its_thread_the_same_frames(tmp_path):
    """The encoding thread stores exactly what encoding in the caller's thread stores."""
    for background in (False, True):
        with VideoSink(tmp_path / f"{background}.mp4", 25, (160, 120), background=background) as sink:
            for frame in _frames(30):
                sink.write(frame)
                frame[:] = 0  # the caller reuses its buffer: the sink kept a copy
    threaded, inline = (_decoded(tmp_path / f"{b}.mp4") for b in (True, False))
    assert len(threaded) == len(inline) == 30
    assert all(np.array_equal(a, b) for a, b in zip(threaded, inline))
    assert threaded[-1].max() > 0  # the frames as written, not the zeroed buffers


def test_video_sink_aborted_with_frames_queued_leaves_nothing(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", 25, (160, 120))
    for frame in _frames(20):
        sink.write(frame, owned=True)
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_encoding_error_reaches_the_caller_and_leaves_no_file(tmp_path):
    class Broken:
        def write(self, frame):
            raise cv2.error("encoder failed")

        def release(self):
            pass

    sink = VideoSink(tmp_path / "out.mp4", 25, (160, 120))
    sink._writer = Broken()
    sink.write(np.zeros((120, 160, 3), np.uint8))
    with pytest.raises(OSError, match="could not write video"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def _growing_stream(path, before=20, after=20):
    """A raw MJPEG stream whose frames grow from 160x120 to 320x240 after ``before`` frames."""
    with open(path, "wb") as out:
        for i, frame in enumerate([*_frames(before), *_frames(after, (320, 240))]):
            cv2.rectangle(frame, (0, 0), (frame.shape[1] - 1, frame.shape[0] - 1), (0, 0, 255), 3)
            out.write(cv2.imencode(".jpg", frame)[1].tobytes())


def test_a_stream_whose_frame_size_changes_is_read_frame_by_frame(tmp_path):
    path = tmp_path / "grows.mjpeg"
    _growing_stream(path)
    with VideoSource(str(path)) as source:
        images = [frame.image for frame in source]
    assert [image.shape[:2] for image in images] == [(120, 160)] * 20 + [(240, 320)] * 20
    # No frame repeats the one before (OpenCV's reader returned frame 19 again and again here).
    assert not any(np.array_equal(a, b) for a, b in zip(images, images[1:]))


def test_video_sink_fits_frames_of_another_size_keeping_their_shape(tmp_path):
    path = tmp_path / "out.avi"
    wide = np.full((100, 400, 3), 255, np.uint8)  # 4:1 into 160x120: 160x40 between black bars
    with VideoSink(path, 25, (160, 120)) as sink:
        sink.write(wide)
    capture = cv2.VideoCapture(str(path))
    ok, shown = capture.read()
    capture.release()
    assert ok and shown.shape == (120, 160, 3)
    assert shown[60].mean() > 200 and shown[5].mean() < 30 and shown[115].mean() < 30


def test_cli_video_of_a_growing_stream_writes_every_frame(tmp_path, tiny_model_path):
    import subprocess

    from conftest import AGECAM

    source, out = tmp_path / "grows.mjpeg", tmp_path / "out.avi"
    _growing_stream(source)
    done = subprocess.run([*AGECAM, "video", str(source), "--no-window", "-o", str(out), "--model",
                           str(tiny_model_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "frame size changed from 160x120 to 320x240 at frame 20" in done.stderr
    assert _count(out) == 40


def test_a_variable_frame_rate_file_is_read_whole_on_its_own_clock(tmp_path, tiny_model_path):
    import fractions
    import subprocess

    import av

    from conftest import AGECAM
    from agecam.realtime.synthetic import astronaut_face

    path = tmp_path / "vfr.mp4"
    head = cv2.resize(astronaut_face(), (150, 150))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        pts = 0
        for i in range(60):
            image = np.full((240, 320, 3), 90, np.uint8)
            image[40:190, 80 + i:230 + i] = head
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
            pts += 33 if i < 30 else 200  # 30 fps, then 5 fps
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    table = tmp_path / "faces.csv"
    done = subprocess.run([*AGECAM, "video", str(path), "--no-window", "--csv", str(table), "--json",
                           "--model", str(tiny_model_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import json

    assert json.loads(done.stdout)["frames"] == 60
    import csv

    with open(table, newline="") as handle:
        times = {int(r["frame"]): float(r["time_s"]) for r in csv.DictReader(handle)}
    # The CSV's clock is the file's: frame 59 comes 30 x 0.033 + 29 x 0.2 = 6.79 s in, not 59 / fps.
    assert times[59] == pytest.approx(6.79, abs=0.01)
    assert times[10] == pytest.approx(0.33, abs=0.01)
