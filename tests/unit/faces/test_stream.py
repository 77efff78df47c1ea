"""Frame numbers of a video whose decoder lost frames: the rows' places among the media stage's frame times."""

from __future__ import annotations

import numpy as np

from affectflow.faces.stream import FRAME_TIME_TOLERANCE_S, numbers_by_time

MEDIA = np.arange(10) / 25  # the media stage's times of a 10-frame video


def test_frames_after_a_loss_keep_their_places() -> None:
    # decoded 0 1 2 then 5 6 ... (3 and 4 lost); every other frame analysed, two people in frame 2
    index = np.array([0, 2, 2, 4, 6])
    times = MEDIA[[0, 2, 2, 6, 8]]
    assert numbers_by_time(index, times, MEDIA).tolist() == [0, 2, 2, 6, 8]


def test_times_off_the_media_clock_or_out_of_order_keep_decoding_order() -> None:
    assert numbers_by_time(np.array([0, 1]), np.array([0.0, 0.04 + 2 * FRAME_TIME_TOLERANCE_S]), MEDIA) is None
    assert numbers_by_time(np.array([0, 1, 2]), MEDIA[[0, 3, 3]], MEDIA) is None  # two frames, one place
    assert numbers_by_time(np.array([0, 1, 2]), MEDIA[[0, 5, 4]], MEDIA) is None  # back in time
    assert numbers_by_time(np.array([], dtype=np.int64), np.array([]), MEDIA) is None
