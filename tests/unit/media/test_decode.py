import numpy as np
import pytest

from affectflow.data.units import Unit
from affectflow.io.store import ShardReader
from affectflow.media.decode import MediaError, probe, process_video, stream_video
from affectflow.stages.media import run_media
from affectflow.testing.media import make_video


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
    res = run_media(units, out)
    assert res.written == ["good clip"] and res.skipped[0][0] == "bad"
    with ShardReader(out, stage="media") as r:
        assert r.video_ids() == ["good clip"]
        assert r.skipped()[0][0] == "bad"
        rec = r.read("good clip")
        assert rec.attrs["n_frames"] == len(rec.arrays["timestamps"])
    before = out.read_bytes()
    with pytest.raises(MediaError, match="bad.mp4"):
        run_media(units, out, on_bad_video="fail")
    assert out.read_bytes() == before  # a failed job never corrupts the existing result


def test_edit_list_preroll_is_not_counted(video_factory, tmp_path):
    """Packets an edit list discards are not frames: counts must match decoding."""
    import av

    from affectflow.testing.media import ffmpeg

    src = video_factory("src.mp4", duration=2.0, fps=25, audio="none")
    cut = tmp_path / "cut.mp4"
    # stream copy from a non-keyframe start writes an edit list with pre-roll packets
    ffmpeg("-ss", "0.5", "-i", str(src), "-c", "copy", str(cut))
    with av.open(str(cut)) as c:
        decoded = sum(1 for _ in c.decode(video=0))
    assert probe(cut).n_frames == decoded


# ------------------------------------------------------------------ one clock: audio and frame times


def _remux(out, video_src, audio_src, video_offset=0.0, audio_offset=0.0):
    """The same streams (copied, not re-encoded) with one of them starting later."""
    from affectflow.testing.media import ffmpeg

    ffmpeg("-itsoffset", str(video_offset), "-i", str(video_src), "-itsoffset", str(audio_offset), "-i",
           str(audio_src), "-map", "0:v", "-map", "1:a", "-c", "copy", str(out))
    return out


def _noise_clip(path):
    """3 s of video with pink-noise audio at 48 kHz: no period, so a sample offset shows unambiguously."""
    from affectflow.testing.media import ffmpeg

    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-f", "lavfi", "-i",
           "anoisesrc=color=pink:sample_rate=48000:seed=7", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-shortest", str(path))
    return path


def test_late_audio_is_padded_onto_the_video_clock(tmp_path):
    base = _noise_clip(tmp_path / "base.mp4")
    late = _remux(tmp_path / "late.mp4", base, base, audio_offset=2.0)
    ref, rec = process_video(base), process_video(late)
    assert rec.probe.audio_offset == pytest.approx(2.0, abs=0.07)  # AAC priming: up to 1024 samples earlier
    assert not rec.audio[: int(rec.probe.audio_offset * 16000)].any()
    # where the reference's samples are found now: 2 s (32,000 samples) later, to the millisecond
    # (decoding the encoder's priming and resampling it moves the start by under 1 ms)
    probe_ = ref.audio[8000:24000]
    lags = np.arange(30000, 34000)
    corr = [float(np.dot(rec.audio[8000 + lag : 24000 + lag], probe_)) for lag in lags]
    lag = int(lags[int(np.argmax(corr))])
    assert abs(lag - 32000) <= 16, lag
    assert np.corrcoef(rec.audio[8000 + lag : 24000 + lag], probe_)[0, 1] > 0.95  # the same sound
    assert any("audio starts 1.9" in w or "audio starts 2.0" in w for w in rec.warnings), rec.warnings
    np.testing.assert_allclose(rec.probe.timestamps, ref.probe.timestamps)  # frames keep their times


def test_early_audio_is_cut_onto_the_video_clock(tmp_path):
    base = _noise_clip(tmp_path / "base.mp4")
    early = _remux(tmp_path / "early.mp4", base, base, video_offset=1.0)
    ref, rec = process_video(base), process_video(early)
    assert rec.probe.audio_offset == pytest.approx(-1.0, abs=1e-3)
    probe_ = ref.audio[24000:40000]  # 1.5-2.5 s of the original: 0.5-1.5 s once the first second is cut
    lags = np.arange(6000, 10000)
    corr = [float(np.dot(rec.audio[lag : lag + 16000], probe_)) for lag in lags]
    lag = int(lags[int(np.argmax(corr))])
    assert abs(lag - 8000) <= 16, lag
    assert np.corrcoef(rec.audio[lag : lag + 16000], probe_)[0, 1] > 0.99
    assert any("before the first video frame: its first 1.00 s cut" in w for w in rec.warnings), rec.warnings
    assert rec.probe.timestamps[0] == pytest.approx(0.0, abs=1e-6)


def test_small_offsets_are_corrected_without_a_warning(video_factory):
    rec = process_video(video_factory(duration=2.0, audio="tone"))
    assert abs(rec.probe.audio_offset) < 0.1 and rec.warnings == []


def _mjpeg_with_pts(path, pts, fps=25, dts=None):
    """An intra-only video whose packets carry exactly ``pts`` (units of 1/fps): repeated or decreasing times;
    ``dts`` (default: the pts) is the decode order the muxer needs to be non-decreasing."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("mjpeg", rate=fps)
        s.width, s.height, s.pix_fmt = 160, 120, "yuvj420p"
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), (i * 23) % 256, np.uint8), format="rgb24")
            for pkt in s.encode(frame):
                pkt.pts, pkt.dts = p, (p if dts is None else dts[i])
                pkt.time_base = Fraction(1, fps)
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


def test_repeated_timestamps_are_reported_and_made_strictly_increasing(tmp_path):
    from affectflow.faces.video import VideoInfo, iter_batches
    from affectflow.media.decode import REPEATED_TIME_STEP_S, strictly_increasing

    path = _mjpeg_with_pts(tmp_path / "dup.mkv", [0, 1, 2, 3, 3, 3, 4, 5, 6, 7])
    rec = process_video(path)
    t = rec.probe.timestamps
    assert len(t) == 10 and np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t[3:6], [0.12, 0.12 + REPEATED_TIME_STEP_S, 0.12 + 2 * REPEATED_TIME_STEP_S])
    np.testing.assert_allclose(t[6:], [0.16, 0.20, 0.24, 0.28])  # later frames keep their times
    assert rec.probe.repaired_timestamps == 2
    assert any(w.startswith("2 frame(s) with a timestamp not after the previous frame's") for w in rec.warnings)
    # the faces stage decodes the frames and repairs their times by the same rule: one clock
    info = VideoInfo(str(path))
    decoded = [ts for b in iter_batches(path, info) for ts in b.timestamps]
    np.testing.assert_allclose(decoded, t)
    assert info.n_timestamps_repaired == 2
    # the rule itself, across batches
    fixed, n = strictly_increasing(np.array([1.0, 0.5]), previous=1.0)
    np.testing.assert_allclose(fixed, [1.0 + REPEATED_TIME_STEP_S, 1.0 + 2 * REPEATED_TIME_STEP_S]) and n == 2


def test_decreasing_timestamps_in_decode_order_are_repaired_by_the_faces_stage(tmp_path):
    from affectflow.faces.video import VideoInfo, iter_batches

    # presentation times 0 1 2 5 3 4 6 (+7) in decode order 0..6: two frames go back in time
    path = _mjpeg_with_pts(tmp_path / "back.mkv", [7, 8, 9, 12, 10, 11, 13], dts=list(range(7)))
    info = VideoInfo(str(path))
    decoded = [ts for b in iter_batches(path, info) for ts in b.timestamps]
    assert len(decoded) == 7 and np.all(np.diff(decoded) > 0)
    assert info.n_timestamps_repaired == 2


def test_a_video_whose_times_go_back_keeps_its_decoding_order_in_the_faces_shard(tmp_path):
    """Its frames' own times (repaired 1 ms apart) are not the media stage's: nothing was lost, so the rows keep
    decoding order, and the video is not skipped as if it had been replaced."""
    from affectflow.data.units import Unit
    from affectflow.io.store import ShardReader
    from affectflow.stages.faces import run_faces
    from affectflow.stages.media import run_media

    path = _mjpeg_with_pts(tmp_path / "back.mkv", [7, 8, 9, 12, 10, 11, 13], dts=list(range(7)))
    units = [Unit("back", str(path), "test", "s0000")]
    run_media(units, tmp_path / "media.h5")
    result = run_faces(units, tmp_path / "faces.h5", {"detector": "mediapipe", "frame_stride": 1}, progress=False,
                       media_shard=tmp_path / "media.h5", on_bad_video="fail")
    assert result.written == ["back"]
    with ShardReader(tmp_path / "faces.h5") as faces:
        rec = faces.read("back", names=("frame_index", "timestamps"))
    assert rec.arrays["frame_index"].tolist() == list(range(7))
    np.testing.assert_allclose(rec.arrays["timestamps"], [0, 0.04, 0.08, 0.2, 0.201, 0.202, 0.24], atol=1e-9)


# ------------------------------------------------------------------ containers beyond MP4

#: extension -> the output options ffmpeg writes it with (codecs the format takes; 176x144 suits H.263)
CONTAINERS = {
    "ts": ("-c:v", "libx264", "-bf", "2", "-c:a", "aac"),  # B-frames, a clock starting at 1.4 s
    "mts": ("-c:v", "libx264", "-c:a", "ac3", "-f", "mpegts", "-mpegts_m2ts_mode", "1"),  # BDAV: 192-byte packets
    "m2ts": ("-c:v", "libx264", "-c:a", "aac"),
    "mpg": ("-c:v", "mpeg2video", "-bf", "2", "-c:a", "mp2"),
    "mpeg": ("-c:v", "mpeg1video", "-c:a", "mp2", "-f", "mpeg"),
    "vob": ("-c:v", "mpeg2video", "-c:a", "ac3", "-f", "vob"),
    "flv": ("-c:v", "flv", "-c:a", "aac"),
    "wmv": ("-c:v", "wmv2", "-c:a", "wmav2"),
    "asf": ("-c:v", "wmv2", "-c:a", "wmav2"),
    "3gp": ("-c:v", "h263", "-c:a", "aac"),
    "3g2": ("-c:v", "h263", "-c:a", "aac"),
    "mxf": ("-c:v", "mpeg2video", "-c:a", "pcm_s16le", "-ar", "48000"),
    "ogv": ("-c:v", "libtheora", "-c:a", "libvorbis"),
    # AVI stores decode times only; FFmpeg's demuxer guesses presentation times one frame late, and out of order
    # with B-frames: the frames are at their chunks' times (VideoClock.decode_times)
    "avi-h264": ("-c:v", "libx264", "-bf", "2", "-c:a", "pcm_s16le"),
    "avi-mpeg4": ("-c:v", "mpeg4", "-bf", "2", "-vtag", "xvid", "-c:a", "libmp3lame"),
    "avi-mjpeg": ("-c:v", "mjpeg", "-c:a", "pcm_s16le"),
}


def _container_clip(path, options):
    """0.4 s of testsrc at 25 fps with a tone, in the container of ``path``'s extension; skips the test when this
    ffmpeg cannot write it."""
    import subprocess

    cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=176x144:rate=25:duration=0.4",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=0.4", "-pix_fmt", "yuv420p",
           *options, "-shortest", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip(f"this ffmpeg cannot write {path.suffix} with {' '.join(options)}: {out.stderr.strip()[-200:]}")
    return path


@pytest.mark.parametrize("ext", sorted(CONTAINERS))
def test_every_container_gives_frames_on_one_clock_and_audio(ext, tmp_path, have_ffmpeg):
    from affectflow.faces.video import VideoInfo, iter_batches

    path = _container_clip(tmp_path / f"clip.{ext.split('-')[0]}", CONTAINERS[ext])
    rec = process_video(path)
    np.testing.assert_allclose(rec.probe.timestamps, np.arange(10) / 25, atol=1e-6)  # from 0, whatever the file's
    assert rec.probe.has_audio and len(rec.audio) == pytest.approx(0.4 * 16000, abs=1200)
    assert np.abs(rec.audio).max() > 0.1 and rec.warnings == []
    info = VideoInfo(str(path))
    decoded = [t for b in iter_batches(path, info) for t in b.timestamps]
    np.testing.assert_allclose(decoded, rec.probe.timestamps, atol=1e-6)  # the faces stage's clock is the same
    assert (info.width, info.height) == (176, 144)
    if ext == "mts":  # BDAV: a 4-byte time code before each 188-byte packet
        data = path.read_bytes()
        assert len(data) % 192 == 0 and data[4] == data[196] == 0x47


def _ts_part(path, size="176x144", gop=12, start=0.0, duration=1.0, codec=("-c:v", "libx264", "-bf", "3")):
    """An MPEG-TS of testsrc (frames 0.04 s apart from ``start`` s of the source) with a tone."""
    from affectflow.testing.media import ffmpeg

    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={start + duration}", "-f", "lavfi", "-i",
           f"sine=duration={start + duration}", "-ss", str(start), "-pix_fmt", "yuv420p", *codec, "-g", str(gop),
           "-c:a", "aac", str(path))
    return path


def test_joined_transport_streams_get_one_clock_in_both_stages(tmp_path, have_ffmpeg):
    """``cat a.ts b.ts``: the second part's clock restarts; it is put right after the first, by both stages."""
    from affectflow.faces.video import VideoInfo, iter_batches

    joined = tmp_path / "joined.ts"
    parts = [_ts_part(tmp_path / "a.ts"), _ts_part(tmp_path / "b.ts", size="320x240")]
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    rec = process_video(joined)
    np.testing.assert_allclose(rec.probe.timestamps, np.arange(50) / 25, atol=1e-6)
    assert rec.probe.timestamp_jumps == 1 and not rec.probe.variable_frame_rate
    assert rec.warnings == ["the video's clock restarts 1 time(s) (recordings joined together?): each part put one "
                            "frame after the one before"]
    assert len(rec.audio) == pytest.approx(2 * 16000, abs=1600)  # FFmpeg joins the sound alike
    info = VideoInfo(str(joined))
    batches = list(iter_batches(joined, info, batch_size=16))
    np.testing.assert_allclose([t for b in batches for t in b.timestamps], rec.probe.timestamps, atol=1e-6)
    assert info.n_size_changes == 1 and info.n_timestamps_repaired == 0


@pytest.mark.parametrize("codec", [("-c:v", "libx264", "-bf", "3"), ("-c:v", "mpeg2video", "-bf", "2")],
                         ids=["h264", "mpeg2"])
def test_a_capture_cut_mid_stream_starts_at_its_first_keyframe(codec, tmp_path, have_ffmpeg):
    """Bytes cut from a broadcast: what comes before the first keyframe cannot be shown, so it is no frame, and
    both stages count and time the frames from there alike."""
    import av

    from affectflow.faces.video import VideoInfo, iter_batches

    whole = _ts_part(tmp_path / "whole.ts", gop=12, duration=2.0, codec=codec)
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[(len(data) // 188 // 3) * 188:])
    with av.open(str(cut)) as c:
        assert not next(pkt for pkt in c.demux(video=0) if pkt.size).is_keyframe  # it starts mid-GOP
    with av.open(str(cut)) as c:
        shown = sum(1 for _ in c.decode(video=0))  # what FFmpeg's decoder shows
    p = probe(cut)
    assert p.n_frames == shown < 50 and p.timestamps[0] == 0.0
    np.testing.assert_allclose(np.diff(p.timestamps), 0.04, atol=1e-6)
    decoded = [t for b in iter_batches(cut, VideoInfo(str(cut))) for t in b.timestamps]
    np.testing.assert_allclose(decoded, p.timestamps, atol=1e-6)
    assert p.listed_duration == 0.0  # an MPEG stream's duration is FFmpeg's guess: no truncation warning


def test_video_stream_problem_says_why_a_file_is_no_video(tmp_path, video_factory):
    import cv2

    from affectflow.media.decode import video_stream_problem
    from affectflow.testing.media import ffmpeg

    clip = video_factory("clip.mp4")
    renamed = tmp_path / "recording"
    renamed.write_bytes(clip.read_bytes())
    assert video_stream_problem(renamed) == ""
    still = tmp_path / "still.dat"
    cv2.imwrite(str(tmp_path / "s.png"), np.zeros((8, 8, 3), np.uint8))
    still.write_bytes((tmp_path / "s.png").read_bytes())
    assert video_stream_problem(still) == "not a video: a still image or text to FFmpeg (format png_pipe)"
    song = tmp_path / "song.m4b"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-i", str(tmp_path / "s.png"), "-map", "0", "-map", "1",
           "-c:a", "libmp3lame", "-c:v", "png", "-disposition:v", "attached_pic", "-f", "mp3", str(song))
    assert video_stream_problem(song) == "not a video: its only picture is a cover image (a sound file)"
    noise = tmp_path / "noise.xyz"
    noise.write_bytes(bytes(range(256)) * 8)
    assert video_stream_problem(noise).startswith("not a video: FFmpeg cannot read it (")
    ansi = tmp_path / "readme.nfo"
    ansi.write_text("FFmpeg shows this as ANSI art\n")
    assert video_stream_problem(ansi) == "not a video: a still image or text to FFmpeg (format tty)"


# ---------------------------------------------------------------- audio in chunks
def test_audio_chunks_join_to_the_whole_stream(tmp_path):
    from affectflow.media.decode import audio_chunks, extract_audio

    clip = _noise_clip(tmp_path / "noise.mp4")
    chunks = list(audio_chunks(clip, chunk_s=0.25))  # 4,000 samples each; 3 s of audio
    assert len(chunks) >= 12 and {len(c) for c in chunks[:-1]} == {4000}
    np.testing.assert_array_equal(np.concatenate(chunks), extract_audio(clip))


@pytest.mark.parametrize("offset", [0.0, 0.3, -0.3, 1.1, -1.1])
def test_the_clock_shift_is_the_same_across_chunk_borders(offset):
    from affectflow.media.decode import on_video_clock

    audio = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    n = int(round(abs(offset) * 1000))
    whole = np.concatenate([np.zeros(n, np.float32), audio]) if offset > 0 else audio[n:]
    for size in (1, 7, 300, 4000, 20_000):
        chunks = [audio[i : i + size] for i in range(0, len(audio), size)]
        np.testing.assert_array_equal(np.concatenate(list(on_video_clock(chunks, offset, 1000))), whole)


def test_a_consumer_that_stops_early_ends_ffmpeg(tmp_path):
    import gc

    from affectflow.media.decode import audio_chunks

    before = _ffmpeg_children()
    chunks = audio_chunks(_noise_clip(tmp_path / "noise.mp4"), chunk_s=0.1)
    next(chunks)
    chunks.close()
    gc.collect()
    assert _ffmpeg_children() == before


def _ffmpeg_children() -> set[int]:
    import os
    from pathlib import Path

    kids = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        kids |= {int(p) for p in (task / "children").read_text().split()}
    return {p for p in kids if Path(f"/proc/{p}/comm").exists() and Path(f"/proc/{p}/comm").read_text().strip()
            == "ffmpeg"}


def test_the_media_shard_holds_the_audio_written_in_chunks(tmp_path, monkeypatch):
    import affectflow.media.decode as decode

    clip = _noise_clip(tmp_path / "noise.mp4")
    whole = process_video(clip)
    monkeypatch.setattr(decode, "AUDIO_CHUNK_S", 0.1)  # many chunks, and the zero padding of no audio too
    quiet = make_video(tmp_path / "quiet.mp4", audio="none", duration=2.0)
    units = [Unit("noise", str(clip), "test", "s0000"), Unit("quiet", str(quiet), "test", "s0000")]
    run_media(units, tmp_path / "m.h5")
    with ShardReader(tmp_path / "m.h5", stage="media") as r:
        rec = r.read("noise")
        np.testing.assert_array_equal(rec.arrays["audio"], whole.audio)
        np.testing.assert_array_equal(rec.arrays["timestamps"], whole.probe.timestamps)
        assert list(rec.attrs["warnings"]) == whole.warnings
        silent = r.read("quiet").arrays["audio"]
        assert silent.shape == (32000,) and not silent.any()


def test_a_video_whose_audio_fails_part_way_leaves_no_trace_in_the_shard(tmp_path, monkeypatch):
    import affectflow.media.decode as decode

    clip = _noise_clip(tmp_path / "noise.mp4")
    real = decode.audio_chunks

    def failing(path, sample_rate=16000, chunk_s=decode.AUDIO_CHUNK_S):
        chunks = real(path, sample_rate, 0.5)
        yield next(chunks)
        chunks.close()
        raise MediaError(f"{path}: cannot decode audio (stream ends in damaged packets)")

    monkeypatch.setattr(decode, "audio_chunks", failing)
    units = [Unit("broken", str(clip), "test", "s0000")]
    result = run_media(units, tmp_path / "m.h5", on_bad_video="skip")
    assert result.written == [] and result.skipped[0][0] == "broken"
    assert "damaged packets" in result.skipped[0][1]
    with ShardReader(tmp_path / "m.h5", stage="media") as r:
        assert r.video_ids() == []


def test_a_file_cut_near_its_end_is_kept_with_a_truncation_warning(tmp_path):
    """An MP4 whose index survives at the front and whose last frames are gone: fewer missing than make it an
    error (5% of a long recording is minutes), so it is kept, and said to be cut off, not merely VFR."""
    from affectflow.testing.media import ffmpeg

    full = tmp_path / "full.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=10", "-c:v", "libx264", "-pix_fmt",
           "yuv420p", "-movflags", "+faststart", str(full))
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    for lost in range(200, 8000, 100):  # the tail bytes that hold 6 to 12 of the 250 frames
        cut.write_bytes(data[: len(data) - lost])
        p = probe(cut)
        if p.notes:
            break
    found = p.n_frames
    assert 238 <= p.n_frames < 245 and p.notes == (
        f"only {found} of the 250 frames the container lists are in the file ({250 - found} missing, fewer than "
        "makes it an error): truncated?",)
    info = stream_video(cut, lambda chunk: None)
    assert p.notes[0] in info.warnings and "notes" not in info.attrs()  # a warning, not a shard attribute
    whole = stream_video(full, lambda chunk: None)
    assert probe(full).notes == () and not any("truncated" in w for w in whole.warnings)


def test_a_file_with_two_video_streams_says_which_is_used(tmp_path):
    from affectflow.testing.media import ffmpeg

    two = tmp_path / "two.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1", "-f", "lavfi", "-i",
           "testsrc2=size=80x60:rate=10:duration=1", "-map", "0", "-map", "1", "-c:v", "libx264", "-pix_fmt",
           "yuv420p", str(two))
    info = stream_video(two, lambda chunk: None)
    assert "2 video streams: the first (stream 0) is used" in info.warnings
    assert (info.probe.width, info.probe.height) == (160, 120)
