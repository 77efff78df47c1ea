"""Real media for tests, made with ffmpeg and espeak-ng (never mocked)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from affectflow.recipes.demo import run_ffmpeg, run_tool


def ffmpeg(*args: str) -> None:
    """Run ffmpeg with ``args`` (the last one its output), as :func:`affectflow.recipes.demo.run_ffmpeg` does:
    a failure is a ``ToolError`` with ffmpeg's last lines and the command."""
    run_ffmpeg(args, f"making {args[-1]}" if args else "ffmpeg")


def espeak_wav(text: str, path: Path) -> Path:
    """Real synthetic speech (espeak-ng's own sample rate) written to ``path``."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run `make test`, which installs it")
    run_tool(["espeak-ng", "-w", str(path), text], f"speaking {text!r}")
    return path


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
