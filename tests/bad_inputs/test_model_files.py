"""Model files: a hash mismatch refuses to load, unverified pickles are never unpickled, downloads restart cleanly.

tests/unit/models/test_weights.py covers fetch/verify (tampered downloads, bad files
left in place, Range resume, restart when Range is ignored, retries); this
module adds what it does not: a source audit of every unpickling call, a
malicious pickle put where a torch checkpoint belongs, and a stale ``.part``.
"""

from __future__ import annotations

import ast
import hashlib
import pickle
from pathlib import Path

import pytest

from affectflow.models.catalogue import weights
from affectflow.models.catalogue.registry import get
from affectflow.models.catalogue.weights import WeightFile, WeightsError
from affectflow.models.faces import load_face_model
from affectflow.models.runtimes import emotiefflib_torch
from affectflow.models.runtimes.emotiefflib import torch_weight_file
from affectflow.testing.http_server import LocalHTTPServer

REPO = Path(__file__).resolve().parents[2]

# torch.load(weights_only=False) is allowed only here: EmotiEffLib's .pt files are whole pickled models,
# unpickled from the very bytes read_verified() has just hashed against the recorded git blob id / pin.
VERIFIED_FULL_UNPICKLE = {("src/affectflow/models/runtimes/emotiefflib_torch.py", "load_torch")}
FORBIDDEN = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("joblib", "load"), ("dill", "load"),
    ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"), ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
}


def _sources() -> list[Path]:
    return sorted([*(REPO / "src").rglob("*.py"), *(REPO / "workflow" / "scripts").glob("*.py")])


def _dotted(node: ast.AST) -> tuple[str, str] | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id, node.attr
    return None


def _audit(path: Path) -> list[str]:
    rel = path.relative_to(REPO).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    found: list[str] = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            if isinstance(child, ast.Call):
                target = _dotted(child.func)
                kw = {k.arg: k.value for k in child.keywords if k.arg}
                where = f"{rel}:{child.lineno} ({func or 'module'})"
                if target in FORBIDDEN:
                    found.append(f"{where}: {'.'.join(target)} unpickles")
                if target == ("torch", "load"):
                    wo = kw.get("weights_only")
                    if not (isinstance(wo, ast.Constant) and wo.value is True):
                        if (rel, func) not in VERIFIED_FULL_UNPICKLE:
                            found.append(f"{where}: torch.load without weights_only=True")
                if target == ("np", "load") or target == ("numpy", "load"):
                    ap = kw.get("allow_pickle")
                    if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                        found.append(f"{where}: np.load(allow_pickle=...)")
                wo = kw.get("weights_only")
                if target != ("torch", "load") and isinstance(wo, ast.Constant) and wo.value is False:
                    found.append(f"{where}: weights_only=False")
            visit(child, name)

    visit(tree, "")
    return found


def test_no_unverified_unpickling_in_the_code() -> None:
    problems = [p for src in _sources() for p in _audit(src)]
    assert not problems, "\n".join(problems)


def test_the_one_full_unpickle_reads_verified_bytes() -> None:
    """load_torch hashes the bytes it unpickles (no gap between the check and the load)."""
    src = (REPO / "src/affectflow/models/runtimes/emotiefflib_torch.py").read_text(encoding="utf-8")
    fn = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == "load_torch")
    calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)]
    verify = min(n.lineno for n in calls if isinstance(n.func, ast.Name) and n.func.id == "read_verified")
    load = next(n for n in calls if _dotted(n.func) == ("torch", "load"))
    assert verify < load.lineno
    arg = load.args[0]
    assert isinstance(arg, ast.Call) and _dotted(arg.func) == ("io", "BytesIO")
    assert isinstance(arg.args[0], ast.Name) and arg.args[0].id == "data"  # data, sha = read_verified(...)


class _Payload:
    """A 'checkpoint' that runs code when unpickled: it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_checkpoint_with_the_wrong_hash_is_never_unpickled(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "code-ran"
    wf = torch_weight_file("enet_b0_8_best_vgaf")
    evil = tmp_path / "models" / wf.name
    evil.parent.mkdir(parents=True)
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    # the check for torchvision/timm would stop us before the file is even looked at; get past it
    monkeypatch.setattr(emotiefflib_torch, "require_torch_runtime", lambda name: None)
    with pytest.raises(WeightsError) as e:
        load_face_model("enet_b0_8_best_vgaf", tmp_path / "models", engine="timm", device="cpu")
    msg = str(e.value)
    assert str(evil) in msg and "git blob id mismatch" in msg and "left in place" in msg
    assert not marker.exists() and evil.exists()
    # the loader itself re-hashes what it reads: a file swapped after ensure() is refused too
    with pytest.raises(WeightsError, match="changed after it was verified"):
        emotiefflib_torch.load_torch(get("enet_b0_8_best_vgaf"), evil, wf, device="cpu", batch_size=1, threads=None)
    assert not marker.exists()


def test_unpinned_file_is_neither_fetched_nor_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    data = pickle.dumps(_Payload(marker))
    dest = tmp_path / "models" / "hf" / "m.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(data)
    wf = WeightFile(name="hf/m.bin", url="https://example.invalid/m.bin", sha256="")
    with pytest.raises(WeightsError, match="trust on first use is not allowed") as e:
        weights.ensure(wf, tmp_path / "models")
    assert hashlib.sha256(data).hexdigest() in str(e.value)  # what to pin, once the user has checked it
    assert not marker.exists() and dest.read_bytes() == data


def test_stale_partial_download_of_other_bytes_is_rejected_then_restarted(tmp_path: Path) -> None:
    """A .part left by an interrupted download of a different file version must not poison the result."""
    payload = bytes(range(256)) * 1000
    wf_kw = {"name": "fam/w.bin", "sha256": hashlib.sha256(payload).hexdigest()}
    part = tmp_path / "fam" / "w.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\x00" * 5000)  # resumed with Range, these bytes would stay in front
    with LocalHTTPServer() as srv:
        wf = WeightFile(url=srv.add("/w.bin", payload), **wf_kw)
        with pytest.raises(WeightsError, match="failed verification") as e:
            weights.fetch(wf, tmp_path, backoff=0.0, timeout=10, progress=False)
        assert "nothing was put at" in str(e.value)
        assert not (tmp_path / "fam" / "w.bin").exists() and not part.exists()
        assert (tmp_path / "fam" / "w.bin.rejected").exists()
        path = weights.fetch(wf, tmp_path, backoff=0.0, timeout=10, progress=False)  # starts clean
    assert path.read_bytes() == payload
