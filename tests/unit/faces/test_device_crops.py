"""Crops cut with torch where the frames are (faces.crop_on: detector) against crop_square's OpenCV crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from affectflow.faces.crops import crop_square, square_of
from affectflow.faces.device_crops import TOLERANCE, area_weights, crop_squares, crops_by_detector, linear_taps
from affectflow.faces.errors import FaceStageError
from affectflow.faces.video import VideoInfo, iter_batches


def within_tolerance(got: np.ndarray, ref: np.ndarray) -> tuple[int, float]:
    diff = np.abs(got.astype(int) - ref.astype(int))
    most, share = TOLERANCE
    assert diff.max() <= most and (diff > 0).mean() <= share, (diff.max(), (diff > 0).mean())
    return int(diff.max()), float((diff > 0).mean())


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[np.ndarray]:
    """Frames of a 640x360 test-pattern clip (edges, gradients, text), decoded as the faces stage decodes."""
    from affectflow.testing.media import make_video

    path = make_video(tmp_path_factory.mktemp("v") / "v.mp4", duration=0.4, fps=25, audio="none", size="640x360")
    return [f for b in iter_batches(path, VideoInfo(str(path)), batch_size=16) for f in b.frames]


@pytest.mark.parametrize("size", [224, 112, 48])
def test_crops_match_the_hosts_within_the_tolerance(frames, size) -> None:
    rng = np.random.default_rng(size)
    h, w = frames[0].shape[:2]
    boxes, index = [], []
    for k in range(120):  # inside, across the edges, outside, tiny and larger than the frame
        x0, y0 = rng.uniform(-80, w - 10), rng.uniform(-80, h - 10)
        side = float(rng.choice([3.0, rng.uniform(10, 120), rng.uniform(120, 500)]))
        boxes.append([x0, y0, x0 + side * rng.uniform(0.6, 1.2), y0 + side])
        index.append(k % len(frames))
    boxes_a = np.asarray(boxes, np.float32)
    ref = np.stack([crop_square(frames[i], b, size, 0.2) for i, b in zip(index, boxes_a, strict=True)])
    got = crop_squares(torch.from_numpy(np.stack(frames)), np.asarray(index), boxes_a, size, 0.2).numpy()
    assert got.shape == ref.shape and got.dtype == np.uint8
    within_tolerance(got, ref)
    sides = {square_of(b, 0.2)[2] for b in boxes_a}
    assert min(sides) < size < max(sides)  # both resizes were compared


@pytest.mark.parametrize(("n", "size"), [(300, 224), (448, 224), (37, 224), (150, 224), (223, 224), (60, 64)])
def test_resizes_are_opencvs(n, size) -> None:
    rng = np.random.default_rng(n)
    patch = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
    ref = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if n > size else cv2.INTER_LINEAR)
    frame = torch.from_numpy(patch[None])
    got = crop_squares(frame, np.array([0]), np.array([[0, 0, n, n]], np.float32), size, 0.0).numpy()[0]
    max_diff, share = within_tolerance(got, ref)
    if n > size:
        assert max_diff == 0  # pixel-area weights: exactly OpenCV's


def test_weights_keep_the_brightness() -> None:
    np.testing.assert_allclose(area_weights(301, 224).sum(axis=1), 1.0)
    for rows in (True, False):
        lo, hi, w0, w1 = linear_taps(100, 224, rows)
        assert np.all(np.abs(w0 + w1 - 2048) <= 1) and lo.min() >= 0 and hi.max() <= 99
    with pytest.raises(ValueError, match="shrink"):
        area_weights(100, 224)


def test_only_a_detector_that_holds_its_frames_can_cut_them() -> None:
    from affectflow.faces.detectors import MediaPipeDetector

    with pytest.raises(FaceStageError, match="mediapipe"):
        crops_by_detector(MediaPipeDetector(min_score=0.5), 224, 0.2)
