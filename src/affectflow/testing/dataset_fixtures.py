"""Tiny on-disk datasets in the exact layouts the adapters read.

Videos are empty files: ``build_units`` only lists them, it never decodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from affectflow.data.adapters import EMI_EMOTIONS, EXPR_CLASSES

EXPR_HEADER = ",".join(EXPR_CLASSES)
EMI_HEADER = ",".join(["Filename", *EMI_EMOTIONS])


def make_videos(folder: Path, names: Iterable[str]) -> Path:
    """Create empty files named ``names`` (with extension) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def write_frame_labels(
    labels: Path, split_dir: str, video_id: str, values: Sequence[int | str], header: str | None
) -> Path:
    """``labels/<split_dir>/<video_id>.txt``: optional header line, then one value per line."""
    path = labels / split_dir / f"{video_id}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header is not None else []) + [str(v) for v in values]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def write_expr(labels: Path, split_dir: str, video_id: str, values: Sequence[int | str]) -> Path:
    return write_frame_labels(labels, split_dir, video_id, values, EXPR_HEADER)


def write_ah(labels: Path, split_dir: str, video_id: str, values: Sequence[int | str]) -> Path:
    return write_frame_labels(labels, split_dir, video_id, values, "AH")


def write_emi_csv(path: Path, rows: Iterable[Sequence[object]], header: str = EMI_HEADER) -> Path:
    """A Hume-Vidmimic2 split csv; cells are written as given (no quoting needed here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [header, *(",".join(str(c) for c in row) for row in rows)]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


def write_list(path: Path, ids: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


def make_demo_like(root: Path) -> list[dict]:
    """Three adapters over one videos folder, like the bundled demo; returns the config list.

    Videos: a, b, c (.mp4), "d e" (.avi), test1 (.mov). EXPR labels a (train),
    b (val); EMI labels a, c (train), b (val), test1 (test csv); AH labels a
    (train), "d e" (val). test1 is in the EXPR and AH test lists.
    """
    make_videos(root / "data/videos", ["a.mp4", "b.mp4", "c.mp4", "d e.avi", "test1.mov", "notes.txt"])
    expr = root / "data/labels/EXPR"
    write_expr(expr, "Train_Set", "a", [0, 1, -1, 7])
    write_expr(expr, "Validation_Set", "b", [4, 4])
    write_list(expr / "test_list.txt", ["test1"])
    emi = root / "data/labels/EMI"
    write_emi_csv(emi / "train_split.csv", [["a.mp4", 0, 0.1, 0.2, 0.3, 0.4, 1], ["c", 1, 1, 1, 1, 1, 1]])
    write_emi_csv(emi / "valid_split.csv", [["b", 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])
    write_emi_csv(emi / "test_split.csv", [["test1"]], header="Filename")
    ah = root / "data/labels/AH"
    write_ah(ah, "Train_Set", "a", [0, 1, 1, 0])
    write_ah(ah, "Validation_Set", "d e", [1])
    write_list(ah / "test_list.txt", ["test1"])
    return [
        {
            "adapter": "affwild2",
            "videos": "data/videos",
            "labels": "data/labels/EXPR",
            "test_list": "data/labels/EXPR/test_list.txt",
        },
        {"adapter": "hume_vidmimic2", "videos": "data/videos", "labels": "data/labels/EMI"},
        {
            "adapter": "bah",
            "videos": "data/videos",
            "labels": "data/labels/AH",
            "test_list": "data/labels/AH/test_list.txt",
        },
    ]
