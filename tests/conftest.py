"""Shared fixtures: real media made with ffmpeg, never mocked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *args], check=True)


def espeak_wav(text: str, path: Path) -> Path:
    """Real synthetic speech (espeak-ng's own sample rate) written to ``path``."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run `make test`, which installs it")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    return path


@pytest.fixture
def no_models_dir_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """$AFFECTFLOW_MODELS_DIR overrides the models directory; tests that pass their own ask for this."""
    monkeypatch.delenv("AFFECTFLOW_MODELS_DIR", raising=False)


def make_video(
    path: Path,
    duration: float = 2.0,
    fps: int = 25,
    audio: str = "tone",
    size: str = "160x120",
    vfr: bool = False,
) -> Path:
    """Write a real H.264 video; audio is 'tone', 'silent', 'none' or 'short'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}:duration={duration}"]
    if audio in ("tone", "short"):
        adur = duration / 2 if audio == "short" else duration
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={adur}"]
    elif audio == "silent":
        args += ["-f", "lavfi", "-i", f"anullsrc=r=44100:cl=mono:d={duration}"]
    args += ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    if vfr:
        # drop frames unevenly: keep frames whose index mod 5 is not 1 or 2
        args += ["-vf", "select='not(between(mod(n\\,5)\\,1\\,2))'", "-fps_mode", "vfr"]
    if audio != "none":
        args += ["-c:a", "aac", "-shortest"] if audio != "short" else ["-c:a", "aac"]
    ffmpeg(*args, str(path))
    return path


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
