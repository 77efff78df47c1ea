"""The catalogue is imported by every workflow parse: each Slurm job parses the workflow (twice, with its
job step), so a heavy import there costs seconds per job. Stage modules keep torch, scikit-learn and the
other heavy libraries to their jobs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "sklearn", "transformers", "matplotlib", "onnxruntime", "faster_whisper",
         "scipy.optimize", "scipy.interpolate", "scipy.stats", "pyarrow.parquet")


def test_the_catalogue_loads_no_heavy_library() -> None:
    code = ("import json, sys, affectflow.stages.catalogue as c; "
            f"print(json.dumps([len(c.STAGES), sorted(k for k in {HEAVY!r} if k in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    n_stages, loaded = json.loads(out)
    assert n_stages == 18
    assert loaded == []


def test_every_stage_module_is_wiring() -> None:
    """A stage module is its options, its version and run(): the work lives in the domain packages."""
    from pathlib import Path

    import affectflow.stages

    folder = Path(affectflow.stages.__file__).parent
    long = {p.name: n for p in folder.glob("*.py") if (n := len(p.read_text().splitlines())) > 250}
    assert not long, f"stage modules over 250 lines: {long}"
