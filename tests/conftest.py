"""Shared fixtures: real media made with ffmpeg, never mocked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from affectflow.testing.media import make_video

#: the longest groups, started first (``make test`` passes ``--no-loadscope-reorder``, so xdist hands out groups
#: in this order): the Slurm demo run, then the shared demo run; started last, either one outlasts the rest
LONG_GROUPS = ("tests/e2e/test_slurm.py", "demo_run")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup`` (``make test`` runs two workers): every test that uses the
    shared demo run (``done``) goes to one worker, and each other file's tests stay together, so every session-
    and module-scoped set-up (the demo run, a Slurm cluster, the quick benchmark) is made once. The groups are
    ordered :data:`LONG_GROUPS` first, then by size, largest first (what xdist itself does without the flag)."""
    groups: dict[pytest.Item, str] = {}
    for item in items:
        shares_demo = {"done", "run_results"} & set(getattr(item, "fixturenames", ()))
        groups[item] = "demo_run" if shares_demo else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(groups[item]))
    size: dict[str, int] = {}
    for g in groups.values():
        size[g] = size.get(g, 0) + 1

    def rank(item: pytest.Item) -> tuple[int, int]:
        g = groups[item]
        return (LONG_GROUPS.index(g), 0) if g in LONG_GROUPS else (len(LONG_GROUPS), -size[g])

    items.sort(key=rank)  # stable: a group's tests keep their order


@pytest.fixture
def no_models_dir_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """$AFFECTFLOW_MODELS_DIR overrides the models directory; tests that pass their own ask for this."""
    monkeypatch.delenv("AFFECTFLOW_MODELS_DIR", raising=False)


@pytest.fixture(scope="session")
def have_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed: run `make test`, which installs it")


@pytest.fixture
def video_factory(tmp_path: Path, have_ffmpeg: None):
    def factory(name: str = "v.mp4", **kw) -> Path:
        return make_video(tmp_path / name, **kw)

    return factory


@pytest.fixture(scope="session")
def done(tmp_path_factory: pytest.TempPathFactory):
    """One complete real run of the default workflow on the demo, shared by the e2e modules.

    Tests that change its files or config restore them before they end.
    """
    from affectflow.testing.snakerun import make_workdir

    wd = make_workdir(tmp_path_factory.mktemp("wf"))
    wd.run()
    return wd



@pytest.fixture(scope="session")
def run_results(done) -> Path:
    """The shared e2e run's results folder (read only: tests copy what they change)."""
    return done.results()


@pytest.fixture
def api(monkeypatch):
    """A local server that speaks the OpenAI and GigaChat embedding protocols, with the keys in the environment."""
    from affectflow.testing.api_server import GIGA_CREDS, GIGA_TOKEN, OPENAI_KEY, EmbeddingAPIServer
    from affectflow.text.api_clients import GIGACHAT_KEY_ENV, OPENAI_KEY_ENV

    monkeypatch.setenv(OPENAI_KEY_ENV, OPENAI_KEY)
    monkeypatch.setenv(GIGACHAT_KEY_ENV, GIGA_CREDS)
    with EmbeddingAPIServer(OPENAI_KEY, GIGA_CREDS, GIGA_TOKEN) as srv:
        yield srv


@pytest.fixture
def load_bars(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bool]]]:
    """Every progress bar transformers makes while the test runs, as (description, drawn): drawn is False for
    the empty stand-in it makes while bars are switched off. Bars are switched on first (as in a fresh
    process), whatever earlier tests in this worker did, and the earlier setting is restored afterwards.
    Recorded where transformers makes them, not read from stderr, which tqdm may leave empty (no terminal,
    TQDM_DISABLE)."""
    from transformers.utils import logging as hf_logging

    bars: list[tuple[str, bool]] = []

    def record(factory, args, kwargs):  # noqa: ANN001, ANN202
        bars.append((str(kwargs.get("desc", "")), factory is not hf_logging.EmptyTqdm))
        return hf_logging.EmptyTqdm(*args, **kwargs)

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    previous = hf_logging.set_tqdm_hook(record)
    yield bars
    hf_logging.set_tqdm_hook(previous)
    if not was_on:
        hf_logging.disable_progress_bar()
