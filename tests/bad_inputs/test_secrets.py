"""API keys of the embedding providers: from the environment only, and never in a log, output, report or error.

Planted keys are put in ``OPENAI_API_KEY`` / ``GIGACHAT_CREDENTIALS`` and the
text-feature stage is run against a local server that speaks both protocols
(affectflow.testing.api_server) and, like some real error pages, echoes the request's
``Authorization`` header back in its error bodies. Everything a user could see afterwards is searched.
"""

from __future__ import annotations

import ast
import logging
import re
import traceback
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest

from affectflow.core import joblog
from affectflow.io.store import Provenance, write_shard
from affectflow.models.resolve import resolve_model
from affectflow.stages import text_features as tf
from affectflow.stages.problems import run_problems
from affectflow.testing.api_server import EmbeddingAPIServer
from affectflow.text.api_clients import GIGACHAT_KEY_ENV, OPENAI_KEY_ENV
from affectflow.text.errors import TextFeatureError
from affectflow.text.loading import load_text_encoder

REPO = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-PLANTED-openai-7f3a9c1e5b2d4f6a8c0e"
GIGA_CREDS = "UExBTlRFRC1naWdhY2hhdC1jcmVkZW50aWFscw=="
GIGA_TOKEN = "PLANTED-gigachat-access-token-42"
SECRETS = (OPENAI_KEY, GIGA_CREDS, GIGA_TOKEN)
DIM = 8
SECRET_NAME = re.compile(r"KEY|CREDENTIAL|TOKEN|SECRET|PASSWORD", re.I)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddingAPIServer]:
    monkeypatch.setenv(OPENAI_KEY_ENV, OPENAI_KEY)
    monkeypatch.setenv(GIGACHAT_KEY_ENV, GIGA_CREDS)
    with EmbeddingAPIServer(OPENAI_KEY, GIGA_CREDS, GIGA_TOKEN, openai_dim=DIM, giga_dim=DIM) as srv:
        yield srv


@pytest.fixture
def job_log(tmp_path: Path) -> Iterator[Path]:
    """The stage's logging set up as in a workflow job (joblog), restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    path = tmp_path / "logs" / "text.log"
    joblog.setup(path, level=logging.DEBUG)
    try:
        yield path
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        logging.captureWarnings(False)


def _transcripts(path: Path) -> Path:
    from affectflow.text.transcript import Transcript

    records = []
    for vid, texts in {"a": ["I am happy.", "So happy."], "b": ["Not at all."], "quiet": []}.items():
        tr = Transcript(language="en")
        for i, text in enumerate(texts):
            tr.add_segment(float(i), float(i) + 0.9, text, [])
        records.append(tr.to_record(vid))
    return write_shard(path, Provenance(stage="transcripts", model="asr"), records)


def _h5_texts(path: Path) -> list[str]:
    """Every attribute (file, groups, datasets) and every string dataset of an HDF5 file, as text."""
    out: list[str] = []
    with h5py.File(path, "r") as f:
        def grab(name: str, obj: h5py.HLObject) -> None:
            out.append(name)
            out.extend(f"{k}={v!r}" for k, v in obj.attrs.items())
            if isinstance(obj, h5py.Dataset) and h5py.check_string_dtype(obj.dtype) is not None:
                out.extend(repr(x) for x in obj[()].ravel())

        grab("/", f)
        f.visititems(grab)
    out.append(path.read_bytes().decode("latin-1"))
    return out


def _leaks(texts: list[str]) -> list[str]:
    return [f"{s[:12]}... in {t[:200]!r}" for t in texts for s in SECRETS if s in t]


def test_planted_keys_appear_in_no_log_output_report_or_error(server: EmbeddingAPIServer, job_log: Path, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    transcripts = _transcripts(tmp_path / "transcripts" / "s0000.h5")
    out = tmp_path / "features" / "text"
    openai = {"model": "openai_text_embedding_3_small", "base_url": server.url + "/v1", "dim": DIM,
              "batch_size": 2, "max_retries": 2}
    giga = {"model": "gigachat_embeddings", "base_url": server.url + "/api/v1",
            "auth_url": server.url + "/api/v2/oauth", "dim": DIM, "max_retries": 2}
    no_sleep = {"progress": False, "sleep": lambda s: None}

    server.fail = {"/v1/embeddings": [500, 503], "/api/v1/embeddings": [503]}  # retried, logged
    tf.run_text_features(transcripts, out / "openai" / "s0000.h5", openai, **no_sleep)
    tf.run_text_features(transcripts, out / "giga" / "s0000.h5", giga, **no_sleep)
    errors = []
    for cfg, path, fail in ((openai, "/v1/embeddings", [400]), (giga, "/api/v2/oauth", [401]),
                            (openai, "/v1/embeddings", [429, 429, 429])):
        server.fail = {path: list(fail)}
        with pytest.raises(TextFeatureError) as e:
            tf.run_text_features(transcripts, tmp_path / "failed.h5", cfg, **no_sleep)
        errors += [str(e.value), repr(e.value), "".join(traceback.format_exception(e.value))]
    assert not (tmp_path / "failed.h5").exists()
    # the keys did reach the server, so their absence below means something
    assert f"Bearer {OPENAI_KEY}" in server.auth and f"Basic {GIGA_CREDS}" in server.auth
    assert f"Bearer {GIGA_TOKEN}" in server.auth
    assert any("rejected request with Authorization: Bearer ***" in e for e in errors)

    problems = tmp_path / "problems.tsv"
    run_problems([str(out / "openai" / "s0000.h5"), str(out / "giga" / "s0000.h5")], str(problems))
    captured = capfd.readouterr()
    log_text = job_log.read_text(encoding="utf-8")
    assert "retry 1/2" in log_text  # the retries were logged, with the server's (scrubbed) message
    texts = [log_text, captured.out, captured.err, problems.read_text(encoding="utf-8"), *errors]
    for h5 in out.rglob("*.h5"):
        texts += _h5_texts(h5)
    leaks = _leaks(texts)
    assert not leaks, "\n".join(leaks)


def test_keys_come_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPENAI_KEY_ENV, raising=False)
    monkeypatch.delenv(GIGACHAT_KEY_ENV, raising=False)
    assert (OPENAI_KEY_ENV, GIGACHAT_KEY_ENV) == ("OPENAI_API_KEY", "GIGACHAT_CREDENTIALS")
    for field in ("api_key", "openai_api_key", "credentials", "token", "client_secret"):
        with pytest.raises(ValueError, match="environment only") as e:
            tf.TextFeaturesOptions.from_mapping({"model": "openai_text_embedding_3_small", field: OPENAI_KEY})
        assert OPENAI_KEY not in str(e.value)
    for name, var in (("openai_text_embedding_3_small", OPENAI_KEY_ENV), ("gigachat_embeddings", GIGACHAT_KEY_ENV)):
        with pytest.raises(TextFeatureError, match=var):
            load_text_encoder(resolve_model(name), tf.TextFeaturesOptions(model=name))
    # nothing else in the code names those variables or reads a secret-looking one (no config file, no dotenv)
    named, reads = [], []
    for path in [*(REPO / "src").rglob("*.py"), *(REPO / "workflow").rglob("*.py")]:
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in ("OPENAI_API_KEY", "GIGACHAT_CREDENTIALS"):
                named.append(rel)
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and SECRET_NAME.search(str(arg.value)):
                    reads.append(f"{rel}:{node.lineno}")
    assert named == ["src/affectflow/text/api_clients.py"] * 2 and reads == []
