"""Digests of a run's numbers: to show that a change of code left every output value as it was.

Only the numeric content counts: every HDF5 dataset's dtype, shape and bytes,
and the data rows of the CSV and JSON outputs. Provenance (code versions, run
times, paths) is left out, since it is meant to change.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np


def numeric_digests(results: str | os.PathLike[str]) -> dict[str, str]:
    """``{"<file>:<dataset>": sha256}`` of every HDF5 dataset under ``results`` (paths relative to it)."""
    root = Path(results)
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*.h5")):
        rel = path.relative_to(root).as_posix()
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: object, rel: str = rel) -> None:
                if isinstance(obj, h5py.Dataset):
                    arr = np.asarray(obj[()])
                    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
                    h.update(arr.tobytes() if arr.dtype.kind != "O" else repr(arr.tolist()).encode())
                    out[f"{rel}:{name}"] = h.hexdigest()
            f.visititems(visit)
    for path in sorted(root.rglob("metrics.json")):
        rows = json.loads(path.read_text())
        body = rows.get("rows", rows.get("metrics"))
        out[path.relative_to(root).as_posix()] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return out


def main() -> None:  # python -m affectflow.testing.digests RESULTS [OTHER]: print digests, or the differences
    import sys

    a = numeric_digests(sys.argv[1])
    if len(sys.argv) < 3:
        print(json.dumps(a, indent=1, sort_keys=True))
        return
    b = numeric_digests(sys.argv[2])
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    print(f"{len(a)} vs {len(b)} digests; {len(diff)} differ")
    for k in diff[:50]:
        print("  ", k)
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
