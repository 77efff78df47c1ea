"""affectflow.core: one error base, one atomic write, one device choice and one thread per CUDA device, job logs
that say why a job stopped."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import pkgutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import affectflow
from affectflow.core.device import DEVICE_THREAD, DeviceError, device_thread, on_device, resolve_device
from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_write, atomic_write_bytes, atomic_write_text, sha256_file


def _modules():
    for info in pkgutil.walk_packages(affectflow.__path__, "affectflow."):
        yield importlib.import_module(info.name)


def test_every_error_class_of_the_package_derives_from_the_one_base() -> None:
    errors = {obj for mod in _modules() for _, obj in inspect.getmembers(mod, inspect.isclass)
              if issubclass(obj, Exception) and not issubclass(obj, Warning)
              and obj.__module__.startswith("affectflow.") and not obj.__name__.startswith("_")}
    assert len(errors) >= 20
    assert [e.__qualname__ for e in errors if not issubclass(e, AffectflowError)] == []


def test_atomic_write_replaces_or_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "old\n")
    assert target.read_text() == "old\n"

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old\n" and sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and sha256_file(target) == (
        "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437")
    # the temporary file keeps a suffix for writers that infer the format from it
    seen = []
    atomic_write(tmp_path / "plot.png", lambda tmp: seen.append(tmp.suffix) or tmp.write_bytes(b"x"), suffix=".png")
    assert seen == [".png"] and (tmp_path / "plot.png").read_bytes() == b"x"


def test_one_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="sees no CUDA device"):
        resolve_device("cuda:1")
    assert issubclass(DeviceError, AffectflowError) and issubclass(DeviceError, RuntimeError)


def test_cuda_work_runs_on_one_thread_whoever_calls() -> None:
    # the dispatch itself: "cuda:7" is only a key here (nothing below touches a GPU), so this runs anywhere
    def where(x: int) -> tuple[str, int]:
        return threading.current_thread().name, x * 2

    caller = threading.current_thread().name
    assert on_device("cpu", where, 1) == (caller, 2)  # the CPU: where the call is made
    with ThreadPoolExecutor(4) as pool:  # several short-lived callers, as the stages' video threads are
        got = list(pool.map(lambda x: on_device("cuda:7", where, x), range(8)))
    assert [x for _, x in got] == [x * 2 for x in range(8)]
    names = {name for name, _ in got}
    assert len(names) == 1 and names.pop().startswith(f"{DEVICE_THREAD}-cuda:7")
    assert device_thread("cuda:7") is device_thread("cuda:7") is not device_thread("cuda:6")

    def fails() -> None:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):  # the caller gets the error; the thread goes on
        on_device("cuda:7", fails)
    # a call made on the device thread itself runs at once (queued, it would wait for itself)
    inner = on_device("cuda:7", lambda: on_device("cuda:7", where, 5))
    assert inner[1] == 10 and inner[0].startswith(f"{DEVICE_THREAD}-cuda:7")


@pytest.mark.parametrize(("raise_", "expect", "absent"), [
    ("from affectflow.data.units import UnitsError; raise UnitsError('units.tsv: missing columns')",
     "ERROR affectflow: units.tsv: missing columns", "Traceback"),
    ("raise ZeroDivisionError('bug')", "Traceback", None),
])
def test_a_job_that_stops_says_why_in_its_log(tmp_path: Path, raise_: str, expect: str, absent: str | None) -> None:
    log = tmp_path / "job.log"
    code = f"from affectflow.core import joblog; joblog.setup({str(log)!r}); {raise_}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == 1
    text = log.read_text()
    assert expect in text and (absent is None or absent not in text), text
    logging.getLogger().handlers.clear()


def test_the_layers_contract_places_every_package() -> None:
    """A new top-level package must be given a layer (import-linter checks only what it lists), and every
    Snakemake rule's script has its stage module of the same name."""
    import tomllib

    repo = Path(__file__).resolve().parents[3]
    conf = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in conf["contracts"] if c["type"] == "layers")["layers"]
    placed = {m.strip() for layer in layers for m in layer.replace("|", ":").split(":")}
    tops = {f"affectflow.{info.name}" for info in pkgutil.iter_modules(affectflow.__path__)} - {"affectflow.testing"}
    assert placed == tops
    forbidden = next(c for c in conf["contracts"] if c["type"] == "forbidden")
    assert set(forbidden["source_modules"]) == tops - {"affectflow.recipes"}  # the demo recipe may use test support
    roots = [info.name for info in pkgutil.iter_modules(affectflow.__path__) if not info.ispkg]
    assert len(roots) <= 6, roots
    scripts = {p.stem for p in (repo / "workflow" / "scripts").glob("*.py")}
    stages = {info.name for info in pkgutil.iter_modules(importlib.import_module("affectflow.stages").__path__)}
    stages -= {"catalogue"}  # the stages' declarations, collected: no rule of its own
    assert scripts == stages
    # one shape: every stage module has run(job), and every script only hands its job over
    for name in stages:
        run = importlib.import_module(f"affectflow.stages.{name}").run
        assert list(inspect.signature(run).parameters) == ["job"], name
        body = [line for line in (repo / "workflow" / "scripts" / f"{name}.py").read_text().splitlines()
                if line and not line.startswith("#")]
        assert body[-1] == "run(Job.from_snakemake(snakemake))" and len(body) == 3, name


def test_a_stage_runs_from_a_job_without_snakemake(tmp_path: Path) -> None:
    """run(job) is plain Python: a test (or another driver) can hand it a job."""
    from types import SimpleNamespace

    from affectflow.core.job import Job
    from affectflow.data.units import UnitsTable
    from affectflow.stages import units
    from affectflow.testing.dataset_fixtures import make_demo_like

    datasets = make_demo_like(tmp_path)
    os_cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        units.run(Job(input=SimpleNamespace(), output=["units.tsv"], config={"datasets": datasets, "n_shards": 2},
                      log=str(tmp_path / "logs" / "units.log")))
    finally:
        os.chdir(os_cwd)
    table = UnitsTable.read_tsv(tmp_path / "units.tsv")
    assert sorted(u.video_id for u in table) == ["a", "b", "c", "d e", "test1"]
    assert (tmp_path / "logs" / "units.log").is_file()
    logging.getLogger().handlers.clear()


def test_a_slurm_job_that_asked_for_no_gpu_sees_none(monkeypatch) -> None:
    """Where Slurm does not confine devices every job sees every GPU: ``auto`` would train a CPU job's head on a
    card another job was given."""
    from types import SimpleNamespace

    from affectflow.core.device import hide_unallocated_gpus
    from affectflow.core.job import Job

    assert hide_unallocated_gpus(0, env := {"SLURM_JOB_ID": "7"}) and env["CUDA_VISIBLE_DEVICES"] == ""
    assert not hide_unallocated_gpus(1, env := {"SLURM_JOB_ID": "7"}) and "CUDA_VISIBLE_DEVICES" not in env
    assert not hide_unallocated_gpus(0, env := {}) and env == {}  # a workstation: auto decides
    given = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "2"}  # Slurm's own choice stays
    assert not hide_unallocated_gpus(0, given) and given["CUDA_VISIBLE_DEVICES"] == "2"

    def smk(**resources):
        return SimpleNamespace(input=[], output=[], config={}, params=None, wildcards=None, log=[], threads=1,
                               rule="learn", resources=resources)

    for resources, hidden in (({}, True), ({"gpu": 0}, True), ({"gpu": 1}, False), ({"gres": "gpu:a100:1"}, False)):
        monkeypatch.setenv("SLURM_JOB_ID", "7")
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "x")  # recorded, so that the test leaves it as it found it
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
        Job.from_snakemake(smk(**resources))
        assert (os.environ.get("CUDA_VISIBLE_DEVICES") == "") is hidden, resources
