import numpy as np
import pytest

from affectflow.media import MediaError, probe, process_video, run_media_stage
from affectflow.store import ShardReader
from affectflow.units import Unit


def test_probe_constant_rate(video_factory):
    p = probe(video_factory(duration=2.0, fps=25))
    assert p.n_frames == 50
    assert p.fps == pytest.approx(25, rel=0.01)
    assert p.duration == pytest.approx(2.0, abs=0.05)
    assert not p.variable_frame_rate
    assert np.all(np.diff(p.timestamps) > 0)
    assert p.timestamps[0] == pytest.approx(0.0, abs=1e-6)
    assert (p.width, p.height) == (160, 120)


def test_variable_frame_rate_timestamps_are_true_times(video_factory):
    p = probe(video_factory(duration=2.0, fps=25, vfr=True))
    assert p.variable_frame_rate
    assert p.n_frames == 30  # 3 of every 5 frames kept
    # frame i*5 keeps its original time i*5/25 even though frames were dropped
    assert p.timestamps[3] == pytest.approx(5 / 25, abs=1e-3)


def test_audio_is_16k_mono_and_matches_duration(video_factory):
    rec = process_video(video_factory(duration=2.0, audio="tone"))
    assert rec.sample_rate == 16000
    assert len(rec.audio) == pytest.approx(32000, abs=1600)
    assert rec.audio.dtype == np.float32 and np.abs(rec.audio).max() > 0.1
    assert rec.warnings == []


def test_no_audio_stream_gives_silence_and_warning(video_factory, caplog):
    rec = process_video(video_factory(audio="none", duration=2.0))
    assert not rec.probe.has_audio
    assert len(rec.audio) == 32000 and not rec.audio.any()
    assert any("no audio stream" in w for w in rec.warnings)
    assert "no audio stream" in caplog.text


def test_silent_and_short_audio_warn(video_factory):
    assert any("silent" in w for w in process_video(video_factory("s.mp4", audio="silent")).warnings)
    short = process_video(video_factory("short.mp4", audio="short", duration=3.0))
    assert any("shorter than the video" in w for w in short.warnings)
    assert len(short.audio) < 16000 * 2


def test_broken_files_name_the_file(tmp_path, video_factory):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.mp4.*0 bytes"):
        probe(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 10)
    with pytest.raises(MediaError, match="notes.mp4"):
        probe(text)
    good = video_factory("good.mp4")
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    with pytest.raises(MediaError, match="trunc.mp4"):
        probe(trunc)


def test_stage_skips_or_fails_by_policy(tmp_path, video_factory):
    good = video_factory("good clip.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    units = [Unit("good clip", str(good), "train", "s0000"), Unit("bad", str(bad), "train", "s0000")]
    out = tmp_path / "media" / "s0000.h5"
    res = run_media_stage(units, out, {"sample_rate": 16000})
    assert res.written == ["good clip"] and res.skipped[0][0] == "bad"
    with ShardReader(out, stage="media") as r:
        assert r.video_ids() == ["good clip"]
        assert r.skipped()[0][0] == "bad"
        rec = r.read("good clip")
        assert rec.attrs["n_frames"] == len(rec.arrays["timestamps"])
    before = out.read_bytes()
    with pytest.raises(MediaError, match="bad.mp4"):
        run_media_stage(units, out, {"sample_rate": 16000}, on_bad_video="fail")
    assert out.read_bytes() == before  # a failed job never corrupts the existing result


def test_edit_list_preroll_is_not_counted(video_factory, tmp_path):
    """Packets an edit list discards are not frames: counts must match decoding."""
    import av

    from conftest import ffmpeg

    src = video_factory("src.mp4", duration=2.0, fps=25, audio="none")
    cut = tmp_path / "cut.mp4"
    # stream copy from a non-keyframe start writes an edit list with pre-roll packets
    ffmpeg("-ss", "0.5", "-i", str(src), "-c", "copy", str(cut))
    with av.open(str(cut)) as c:
        decoded = sum(1 for _ in c.decode(video=0))
    assert probe(cut).n_frames == decoded
