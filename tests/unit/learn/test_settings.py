"""Learn settings: ``auto`` resolution, and the JSON form a head's sidecar keeps (a file format)."""

import json

from affectflow.learn.rows import RowOptions
from affectflow.stages.learn import LearnOptions


def test_auto_resolves_for_the_modalities_and_the_task():
    s = LearnOptions().settings()
    assert (s.missing_face, s.text_fill) == ("auto", "auto")
    assert s.resolved("expr", ["face"]).missing_face == "carry_last"
    assert s.resolved("expr", ["face", "audio"]).missing_face == "other_modalities"
    assert s.resolved("ah", ["face", "text"]).text_fill == "zeros"
    assert s.resolved("emi", ["face", "text"]).text_fill == "nearest"
    assert s.resolved("ah_video", ["text"]).text_fill == "nearest"
    chosen = LearnOptions.from_mapping({"missing_face": "drop", "text_fill": "nearest"},
                                       features=("face/f", "text/a/t")).settings()
    assert chosen.resolved("expr", ["face"]) == chosen  # a value the user chose is kept


def test_json_form_has_every_option_in_config_order_with_lists():
    opts = LearnOptions.from_mapping({"emi_weights": [1, 2, 3, 4, 5, 6], "stat_parts": ["mean", "max"],
                                      "train": {"epochs": 3}}, task="emi", features=("face/f",))
    d = opts.settings().resolved("emi", ["face"]).to_json()
    assert list(d) == [f for f in LearnOptions.config_fields() if f != "audio_stat"]  # added: only when set
    assert d["emi_weights"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and d["stat_parts"] == ["mean", "max"]
    assert d["train"] == dict(opts.train) and d["train"]["epochs"] == 3
    assert json.loads(json.dumps(d)) == d


def test_row_options_round_trip_through_the_sidecar():
    s = LearnOptions.from_mapping({"face_input": "both", "stat_parts": ["std"]}, task="ah_video",
                                  features=("face/f",)).settings().resolved("ah_video", ["face"])
    learn_config = json.loads(json.dumps(s.to_json()))  # as the sidecar stores it
    assert RowOptions.from_sidecar(learn_config) == s.rows == RowOptions("both", "carry_last", "nearest", ("std",))
    # the settings of a job are its own task's and modalities': stat_parts is the video tasks' only
    frame = LearnOptions.from_mapping({"stat_parts": ["std"]}, task="ah", features=("face/f",)).settings()
    assert frame.stat_parts == LearnOptions().stat_parts


def test_native_audio_stat_reaches_the_sidecar_and_the_rows_rebuilt_from_it():
    """A head trained with ``audio_stat: native`` is applied (affectflow.predict) with native rows; the sidecars
    written before the option read as ``frames``, what they were trained with."""
    s = LearnOptions.from_mapping({"audio_stat": "native"}, task="emi", features=("audio/a",)).settings()
    learn_config = json.loads(json.dumps(s.resolved("emi", ["audio"]).to_json()))
    assert learn_config["audio_stat"] == "native" and RowOptions.from_sidecar(learn_config).audio_stat == "native"
    old = LearnOptions(task="emi", features=("audio/a",)).settings().resolved("emi", ["audio"]).to_json()
    assert "audio_stat" not in old and RowOptions.from_sidecar(old).audio_stat == "frames"
    # a frame task or a set without audio: not keyed, so setting it reruns nothing there
    for wired in ({"task": "ah", "features": ("audio/a",)}, {"task": "emi", "features": ("face/f",)}):
        assert (LearnOptions.from_mapping({"audio_stat": "native"}, **wired).output_options()
                == LearnOptions.from_mapping({}, **wired).output_options())
