"""The run page's inputs, copied from a finished real run (the shared e2e run), for the page's tests.

The page is tested on the workflow's own outputs -- its predictions table, metrics, sweeps, face crops,
transcripts -- never on numbers made up for the test; ``with_tasks=False`` gives the files of a run
that trained no task (the same table without its task columns, no metrics, no fusions).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from affectflow.core.vocabulary import TASKS


def page_files(results: str | os.PathLike[str], dest: str | os.PathLike[str], *,
               with_tasks: bool = True) -> dict[str, object]:
    """Copy what the run page reads from ``results`` to ``dest``; the keyword arguments of
    ``run_index_page`` for the copy."""
    res, out = Path(results), Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    detector = sorted(p.parent.name for p in (res / "faces").glob("*/*.h5"))[0]
    table = pd.read_parquet(res / "predictions.parquet")
    if not with_tasks:
        table = table[[c for c in table.columns if c.split(":", 1)[0] not in TASKS]]
    table.to_parquet(out / "predictions.parquet", index=False)
    for name in ("units.tsv", "problems.tsv") + (("metrics.csv",) if with_tasks else ()):
        shutil.copy2(res / name, out / name)
    for sub in ("media", "transcripts"):
        shutil.copytree(res / sub, out / sub, dirs_exist_ok=True)
    (out / "faces").mkdir(exist_ok=True)
    for shard in (res / "faces" / detector).glob("*.h5"):
        shutil.copy2(shard, out / "faces" / shard.name)
    fusion = []
    if with_tasks:
        for png in sorted(res.glob("fusion/*/*/sweep_*.png")):
            target = out / png.relative_to(res)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(png, target)
        fusion = sorted({p.parent for p in out.glob("fusion/*/*/sweep_*.png")})
    asr = sorted(p for p in (out / "transcripts").iterdir() if p.is_dir())[:1]
    return dict(run_name=res.name, units=out / "units.tsv", problems=out / "problems.tsv",
                predictions=out / "predictions.parquet", metrics=out / "metrics.csv" if with_tasks else None,
                fusion_dirs=fusion, faces=sorted((out / "faces").glob("*.h5")),
                transcripts=sorted(asr[0].glob("*.h5")) if asr else [], media=sorted((out / "media").glob("*.h5")),
                base_dir=res.parent.parent)
