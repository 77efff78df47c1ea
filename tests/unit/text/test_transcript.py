"""The transcript record: what the transcripts stage writes is what the text features stage reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affectflow.io.store import Provenance, ShardReader, write_shard
from affectflow.text.transcript import Transcript, read_transcripts


def _transcript() -> Transcript:
    tr = Transcript(language="en", language_probability=0.98)
    tr.add_segment(0.0, 1.2, " Hello there. ", [(0.0, 0.5, " Hello", 0.9), (0.6, 1.2, " there.", 0.8)])
    tr.add_segment(1.5, 2.0, "Bye.", [(1.5, 2.0, " Bye.", 0.7)])
    return tr


def test_record_arrays_and_attributes() -> None:
    rec = _transcript().to_record("v", {"audio_duration": 2.5, "note": ""})
    a = rec.arrays
    assert list(a["seg_text"]) == ["Hello there.", "Bye."] and a["seg_start"].dtype == np.float64
    assert list(a["word_text"]) == ["Hello", "there.", "Bye."] and a["word_seg"].tolist() == [0, 0, 1]
    assert a["word_prob"].dtype == np.float32 and a["word_seg"].dtype == np.int32
    assert rec.attrs == {"language": "en", "language_probability": 0.98, "n_segments": 2, "audio_duration": 2.5,
                         "note": ""}
    assert _transcript().text == "Hello there. Bye."


def test_written_then_read_back(tmp_path: Path) -> None:
    silent = Transcript(language="en").to_record("quiet")
    path = write_shard(tmp_path / "t.h5", Provenance(stage="transcripts", model="asr"),
                       [_transcript().to_record("v"), silent])
    shard = read_transcripts(path)
    assert shard.asr_model == "asr" and shard.skipped == []
    videos = {v.video_id: v for v in shard.videos}
    assert sorted(videos) == ["quiet", "v"]
    v, quiet = videos["v"], videos["quiet"]
    assert v.texts == ["Hello there.", "Bye."] and np.array_equal(v.starts, [0.0, 1.5])
    assert np.array_equal(v.ends, [1.2, 2.0]) and v.starts.dtype == np.float64
    assert quiet.texts == [] and quiet.starts.shape == (0,)
    assert shard.texts() == ["Hello there.", "Bye."]
    with ShardReader(path, stage="transcripts") as r:
        assert r.read("v").attrs["n_segments"] == 2
