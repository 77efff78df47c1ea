"""Every corpus case through the media and faces stage functions, with both ``on_bad_video`` policies."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from affectflow.data.units import Unit
from affectflow.faces.errors import VideoError
from affectflow.io.store import ShardReader
from affectflow.media.decode import MediaError
from affectflow.stages.faces import run_faces
from affectflow.stages.media import accepted_units, run_media
from affectflow.testing.corpus import BARE_PATH_CASES, BY_NAME, CASES

MEDIA_CFG: dict = {}
FACES_CFG = {"detector": "mediapipe", "frame_stride": 1, "batch_size": 8}
SKIPPED_BY_MEDIA = [c.name for c in CASES if c.media == "skip"]
SKIPPED_BY_FACES = [c.name for c in CASES if c.faces == "skip"]


def unit_for(name: str, corpus: dict[str, Path]) -> Unit:
    """The unit of a case; bare-path cases use the file name alone (the test chdirs into the corpus)."""
    path = BY_NAME[name].file if name in BARE_PATH_CASES else str(corpus[name])
    return Unit(video_id=name, path=path, split="test", shard="s0000")


@pytest.fixture
def all_units(corpus: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> list[Unit]:
    monkeypatch.chdir(corpus["good"].parent)
    return [unit_for(c.name, corpus) for c in CASES]


def _check(stage: str, outcome: str, pattern: str, name: str, skipped: dict[str, str], warnings: list[str] | None,
           problems: list[str]) -> None:
    """Compare one case's result with the contract; collect every mismatch so one run shows them all."""
    if outcome == "skip":
        if name not in skipped:
            problems.append(f"{stage}/{name}: expected skip, was kept (warnings {warnings})")
        elif not re.search(pattern, skipped[name]):
            problems.append(f"{stage}/{name}: skip reason {skipped[name]!r} does not match {pattern!r}")
        elif BY_NAME[name].file not in skipped[name]:
            problems.append(f"{stage}/{name}: skip reason {skipped[name]!r} does not name the file")
        return
    if name in skipped:
        problems.append(f"{stage}/{name}: expected {outcome}, was skipped: {skipped[name]}")
    elif outcome == "ok" and warnings:
        problems.append(f"{stage}/{name}: expected no warning, got {warnings}")
    elif outcome == "warning" and not any(re.search(pattern, w) for w in warnings or []):
        problems.append(f"{stage}/{name}: expected a warning matching {pattern!r}, got {warnings}")


def test_media_stage_gives_each_case_its_documented_outcome(all_units: list[Unit], tmp_path: Path, caplog) -> None:
    out = tmp_path / "media" / "s0000.h5"
    res = run_media(all_units, out, MEDIA_CFG, on_bad_video="skip")
    skipped = dict(res.skipped)
    problems: list[str] = []
    with ShardReader(out, stage="media") as r:
        assert dict(r.skipped()) == skipped  # the shard lists what was skipped, with the reason
        assert set(r.video_ids()) == set(res.written) == {c.name for c in CASES} - set(skipped)
        for c in CASES:
            warnings = list(r.read(c.name).attrs["warnings"]) if c.name in r else None
            _check("media", c.media, c.media_message, c.name, skipped, warnings, problems)
        # what the kept odd cases look like
        one = r.read("one_frame")
        assert one.attrs["n_frames"] == 1 and one.attrs["duration"] > 0 and len(one.arrays["audio"]) > 0
        assert np.isfinite(one.attrs["fps"]) and one.attrs["fps"] > 0
        assert r.read("rotated").attrs["rotation"] == 90
        assert r.read("huge_4k").attrs["width"] == 3840 and r.read("huge_4k").attrs["n_frames"] == 3
        assert r.read("stream_copy_cut").attrs["n_frames"] == 37  # 50 frames minus the 13 pre-roll ones
        vfr = r.read("variable_frame_rate")
        assert vfr.attrs["variable_frame_rate"] and vfr.attrs["n_frames"] == 15
        assert vfr.arrays["timestamps"][3] == pytest.approx(5 / 25, abs=1e-3)  # true times, not i / fps
        silence = r.read("no_audio").arrays["audio"]
        assert len(silence) == pytest.approx(0.4 * 16000, abs=160) and not silence.any()
    assert not problems, "\n".join(problems)
    for name in skipped:
        assert f"skipping video {name!r}" in caplog.text


@pytest.mark.parametrize("name", SKIPPED_BY_MEDIA)
def test_media_fail_policy_names_the_file_and_writes_nothing(name: str, corpus: dict[str, Path],
                                                              tmp_path: Path) -> None:
    out = tmp_path / "s0000.h5"
    units = [unit_for("good", corpus), unit_for(name, corpus)]
    with pytest.raises(MediaError, match=re.escape(BY_NAME[name].file)) as e:
        run_media(units, out, MEDIA_CFG, on_bad_video="fail")
    assert re.search(BY_NAME[name].media_message, str(e.value))
    assert list(tmp_path.iterdir()) == []  # neither the shard nor its temporary file


def test_faces_stage_on_what_media_accepted(all_units: list[Unit], detector, tmp_path: Path) -> None:
    media = tmp_path / "media" / "s0000.h5"
    run_media(all_units, media, MEDIA_CFG)
    accepted = accepted_units(media, all_units)
    assert {u.video_id for u in accepted} == {c.name for c in CASES if c.media != "skip"}
    out = tmp_path / "faces" / "mediapipe" / "s0000.h5"
    res = run_faces(all_units, out, FACES_CFG, detector=detector, progress=False, media_shard=media)  # as the rule
    skipped = dict(res.skipped)
    problems: list[str] = []
    with ShardReader(out, stage="faces", model="mediapipe") as r, ShardReader(media, stage="media") as m:
        for c in CASES:
            if c.media == "skip":
                assert c.name not in r and c.name not in skipped  # excluded once, by the stage that found it
                continue
            warnings = list(r.read(c.name).attrs["warnings"]) if c.name in r else None
            _check("faces", c.faces, c.faces_message, c.name, skipped, warnings, problems)
        assert not problems, "\n".join(problems)
        for vid in r.video_ids():  # faces and media agree on every frame's time and number, whatever the case
            rec = r.read(vid)
            np.testing.assert_allclose(rec.arrays["timestamps"], m.read(vid).arrays["timestamps"], atol=1e-6)
            assert rec.arrays["frame_index"].tolist() == list(range(len(rec.arrays["timestamps"])))
        no_face = r.read("no_face").arrays
        assert not no_face["has_face"].any() and not no_face["crops"].any() and np.isnan(no_face["bbox"]).all()
        several = r.read("several_faces").arrays
        assert (several["n_faces"] > 1).all() and several["has_face"].all()
        big = r.read("huge_4k")
        assert (big.attrs["width"], big.attrs["height"]) == (3840, 2160) and big.arrays["has_face"].all()
        assert big.arrays["crops"].shape == (3, 224, 224, 3) and big.arrays["bbox"][:, 2].max() > 1000
        rot = r.read("rotated")
        assert rot.attrs["rotation"] == 90 and rot.attrs["width"] > rot.attrs["height"]  # shown upright
        lm = rot.arrays["landmarks"]
        assert rot.arrays["has_face"].all()
        assert np.all(lm[:, 1, 0] - lm[:, 0, 0] > 2 * np.abs(lm[:, 1, 1] - lm[:, 0, 1]))  # eyes side by side
        assert r.read("one_frame").arrays["frame_index"].tolist() == [0]
        assert r.read("stream_copy_cut").attrs["n_frames_decoded"] == 37


@pytest.mark.parametrize("name", SKIPPED_BY_FACES)
def test_faces_stage_alone_skips_or_fails_on_broken_files(name: str, corpus: dict[str, Path], detector,
                                                          tmp_path: Path) -> None:
    """The faces stage also guards itself (e.g. a file replaced after the media stage ran)."""
    units = [unit_for("good", corpus), unit_for(name, corpus)]
    out = tmp_path / "skip.h5"
    res = run_faces(units, out, FACES_CFG, on_bad_video="skip", detector=detector, progress=False)
    assert res.written == ["good"] and [v for v, _ in res.skipped] == [name]
    reason = res.skipped[0][1]
    assert re.search(BY_NAME[name].faces_message, reason) and BY_NAME[name].file in reason
    with ShardReader(out, stage="faces") as r:
        assert r.skipped() == res.skipped
    fail = tmp_path / "fail" / "s0000.h5"
    with pytest.raises(VideoError, match=re.escape(BY_NAME[name].file)):
        run_faces(units, fail, FACES_CFG, on_bad_video="fail", detector=detector, progress=False)
    assert not fail.parent.exists() or list(fail.parent.iterdir()) == []


def test_media_error_is_what_both_stages_catch() -> None:
    assert issubclass(VideoError, MediaError)


def test_docs_table_lists_every_case() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "bad_inputs.md").read_text(encoding="utf-8")
    missing = [c.name for c in CASES if f"`{c.name}`" not in doc]
    assert not missing, f"docs/bad_inputs.md has no row for {missing}"
    assert "problems.tsv" in doc
