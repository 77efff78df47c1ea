"""Run the benchmarks, print a table and write the figures as JSON.

    python -m benchmarks.run                 # full run (several minutes), benchmarks/results/latest.json
    python -m benchmarks.run --quick         # small inputs, one repetition, DAG at 1,000 videos only (~1 min)
    python -m benchmarks.run --only face,dag --out /tmp/x.json

Every figure has: value and unit, the baseline it is compared with, their
ratio, the target, whether it is met, a note on what limits it, details (raw
times of every run) and the seconds the section took. A figure whose
prerequisites are missing (no demo, no CUDA, a package not installed) has
status "skipped" and says why; one whose code failed has status "error" and
the exception (the run goes on, the exit code is then 1). Timings on a shared
machine are noisy: the arms compared are run in turn (A B A B ...) and the
median is reported, and the machine's load average is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import (
    asr,
    dag,
    detection,
    embeddings,
    face_path,
    gpu,
    host_work,
    labels,
    memory,
    preprocessing,
    quantise,
    stage_jobs,
)
from benchmarks.common import FIGURE_KEYS, REPO, Figure, Options, chosen, machine_info

SECTIONS = {
    "face": face_path.run,
    "host": host_work.run,
    "detection": detection.run,
    "asr": asr.run,
    "embeddings": embeddings.run,
    "dag": dag.run,
    "memory": memory.run,
    "gpu": gpu.run,
    "int8": quantise.run,
    "preprocessing": preprocessing.run,
    "labels": labels.run,
    "jobs": stage_jobs.run,
}
DEFAULT_OUT = REPO / "benchmarks" / "results" / "latest.json"
SCHEMA_VERSION = 1


def run_sections(opts: Options, names: list[str], log=print) -> list[Figure]:
    figures: list[Figure] = []
    for name in names:
        log(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            got = SECTIONS[name](opts)
        except Exception as e:
            fig = Figure(f"{name}_error", f"section {name}", status="error",
                         note=f"{type(e).__name__}: {e}", details={"traceback": traceback.format_exc()[-4000:]})
            got = [fig]
        dt = time.perf_counter() - t0
        for fig in got:
            fig.seconds, fig.section = dt / len(got), name
        figures.extend(got)
        log(f"[bench] {name}: {dt:.1f} s", flush=True)
    return figures


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    text = f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return f"{text} {unit}".strip()


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "baseline", "ratio", "target", "met", "status")]
    for f in figures:
        met = {True: "yes", False: "NO", None: "-"}[f.target_met]
        rows.append((f.name, _fmt(f.value, f.unit), _fmt(f.baseline), _fmt(f.ratio), f.target or "-", met,
                     f.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"- {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + ["", *notes])


def _updated(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with ``new``'s figures in place of those of the sections run again (a figure records its section;
    one from before figures did is replaced when the new run made a figure of its name)."""
    if old.get("mode") != new["mode"]:
        raise SystemExit(f"--update: the file holds a {old.get('mode')} run, this is a {new['mode']} run")
    sections = set(new["options"]["sections"])
    kept = {k: v for k, v in old["figures"].items() if v.get("section") not in sections and k not in new["figures"]}
    figures = {**kept, **new["figures"]}
    update = {k: new[k] for k in ("command", "options", "machine", "total_s", "summary")}
    doc = {**old, "figures": figures, "updates": [*old.get("updates", []), update]}
    doc["summary"] = {s: sum(f["status"] == s for f in figures.values()) for s in ("ok", "skipped", "error")}
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small inputs, 1 repetition, DAG at 1,000 videos only")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON file to write (default {DEFAULT_OUT})")
    ap.add_argument("--only", default="", help=f"comma-separated sections, of: {', '.join(SECTIONS)}")
    ap.add_argument("--reps", type=int, default=0, help="repetitions per timing (default: 1 quick, 3 full)")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads of the models in both arms (default 1: the fastest on a shared 2-core "
                         "machine, see docs/performance.md)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep the scratch folder (its path is printed)")
    ap.add_argument("--update", action="store_true",
                    help="keep --out's other figures and replace only those of the sections run now (the file's "
                         "`updates` list records when, how and on what machine)")
    args = ap.parse_args(argv)
    names = chosen(ap, args.only, list(SECTIONS), "sections")
    reps = args.reps or (1 if args.quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="affectflow-bench-"))
    opts = Options(quick=args.quick, reps=reps, threads=args.threads, workdir=workdir)
    t0 = time.perf_counter()
    machine = machine_info()
    try:
        figures = run_sections(opts, names)
    finally:
        if args.keep_workdir:
            print(f"[bench] scratch folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - t0
    counts = {s: sum(f.status == s for f in figures) for s in ("ok", "skipped", "error")}
    doc = {
        "schema_version": SCHEMA_VERSION,
        "mode": opts.mode,
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "options": {"quick": opts.quick, "repetitions": reps, "threads": opts.threads, "sections": names},
        "machine": machine,
        "total_s": round(total, 1),
        "summary": counts,
        "figure_keys": list(FIGURE_KEYS),
        "figures": {f.name: f.to_json() for f in figures},
    }
    if args.update and args.out.exists():
        doc = _updated(json.loads(args.out.read_text()), doc)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")
    tmp.replace(args.out)
    print()
    print(f"affectflow benchmarks ({opts.mode}, {reps} repetition(s), {opts.threads} model thread(s)) on "
          f"{machine['cpu_model']}, {machine['cores']} cores, load {machine['load_average_at_start']}")
    print(table(figures))
    print(f"\n{counts['ok']} ok, {counts['skipped']} skipped, {counts['error']} errors in {total:.0f} s; "
          f"written to {args.out}")
    for f in figures:
        if f.status == "error":
            print(f"\n[bench] {f.name}:\n{f.details.get('traceback', f.note)}", file=sys.stderr)
    return 1 if counts["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
