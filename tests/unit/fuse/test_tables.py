"""The paper-table steps of a chosen post-processing config."""

from affectflow.fuse.postprocess import PostConfig
from affectflow.fuse.tables import describe, steps


def test_steps_add_the_chosen_parts_one_by_one():
    cfg = PostConfig("expr", ("face", "audio"), weights=(0.3, 0.7), k=5, t=0.8)
    got = steps(cfg)
    assert [label for label, _ in got] == ["", "smoothing", "filtering + smoothing"]
    assert (got[0][1].k, got[0][1].t) == (1, None)
    assert (got[1][1].k, got[1][1].t) == (5, None)
    assert got[2][1] == cfg
    assert describe(cfg) == "face+audio (w=0.30/0.70, t=0.8, k=5 box)"


def test_steps_of_the_video_filter_and_of_a_raw_config():
    ah = PostConfig("ah", ("text",), video_filter=True)
    assert [label for label, _ in steps(ah)] == ["", "video filter"]
    assert steps(ah)[-1][1] == ah
    raw = PostConfig("emi", ("face",))
    assert steps(raw) == [("", raw)] and describe(raw) == "face"


def test_a_filtering_lines_smoothing_row_takes_the_kernel_chosen_without_filtering():
    cfg = PostConfig("expr", ("face",), k=25, t=0.8)
    got = dict(steps(cfg, smoothing_k=5))
    assert (got["smoothing"].k, got["smoothing"].t) == (5, None) and got["filtering + smoothing"] == cfg
    assert dict(steps(PostConfig("expr", ("face",), k=25), smoothing_k=5))["smoothing"].k == 25  # no filtering
    # the row is there when smoothing alone helps, whatever the kernel chosen with filtering
    assert "smoothing" not in dict(steps(cfg, smoothing_k=1))
    assert dict(steps(PostConfig("expr", ("face",), k=1, t=0.8), smoothing_k=9))["smoothing"].k == 9


def test_the_weight_vectors_of_three_sets_sum_to_one_the_most_even_first():
    from affectflow.fuse.selection import simplex

    grid = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    vectors = simplex(3, grid)
    assert len(vectors) == 66 and len(set(vectors)) == 66
    assert all(abs(sum(v) - 1.0) < 1e-9 and len(v) == 3 for v in vectors)
    assert sorted(vectors[0]) == [0.3, 0.3, 0.4] and (1.0, 0.0, 0.0) in vectors[-3:]
    assert simplex(2, (0.0, 0.5, 1.0)) == [(0.5, 0.5), (0.0, 1.0), (1.0, 0.0)]
