"""metrics.csv from learn and fuse metrics files."""

from __future__ import annotations

import json
from pathlib import Path

from affectflow.core.vocabulary import EXPR_CLASSES
from affectflow.evaluate.metrics import MetricReport
from affectflow.report.tables import STANDIN_MARK, metrics_table


def test_per_class_rows_follow_the_organisers_class_order(tmp_path: Path) -> None:
    """A learn metrics.json is written with sorted keys (Anger first); its rows, like a fusion's, come in
    Aff-Wild2's class order (Neutral first), so the two kinds of rows read alike."""
    per_class = {c: i / 10 for i, c in enumerate(EXPR_CLASSES)}
    learn = tmp_path / "learn.json"
    MetricReport("expr", "val", {"f1": 0.35}, per_class).save(learn)
    assert list(json.loads(learn.read_text())["per_class"])[0] == "Anger"  # sorted on disk
    fuse = tmp_path / "fuse.json"
    fuse.write_text(json.dumps({"task": "expr", "rows": [{"name": "face", "metrics": {"f1": 0.4},
                                                          "per_class": per_class}]}))
    table = metrics_table({f"learn/expr/face{STANDIN_MARK}": learn, "fuse/expr/f": fuse})
    assert set(table["source"]) == {"learn/expr/face", "fuse/expr/f"}  # a key, not the row's display name
    assert set(table["name"]) == {f"learn/expr/face{STANDIN_MARK}", "fuse/expr/f: face"}
    for stage in ("learn", "fuse"):
        rows = table[(table["stage"] == stage) & table["metric"].str.startswith("f1:")]
        assert list(rows["metric"]) == [f"f1:{c}" for c in EXPR_CLASSES], stage
        assert list(rows["value"]) == [per_class[c] for c in EXPR_CLASSES]
