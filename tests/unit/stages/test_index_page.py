"""The index_page stage: its option, its rerun key, and run(job) on a real demo run's files."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from affectflow.core.job import Job
from affectflow.core.options import OptionsError
from affectflow.plan.rerun import stage_key
from affectflow.stages.index_page import STAGE, IndexPageOptions, run, run_index_page
from affectflow.testing.run_page import page_files


def test_max_videos_is_an_output_option_with_a_default() -> None:
    assert IndexPageOptions.from_config({}).max_videos == 50  # no report section: the default
    assert IndexPageOptions.from_config({"report": {"max_videos": 3}}).max_videos == 3
    assert IndexPageOptions.config_key("max_videos") == "report.max_videos"
    assert stage_key(STAGE, IndexPageOptions(max_videos=3)).text != stage_key(STAGE, IndexPageOptions()).text
    for bad in (-1, 2.5, True, "10"):
        with pytest.raises(OptionsError, match="report: max_videos"):
            IndexPageOptions(max_videos=bad)
    with pytest.raises(OptionsError, match=r"unknown report option\(s\) \['videos'\]"):
        IndexPageOptions.from_config({"report": {"videos": 3}})


@pytest.mark.slow  # needs the shared e2e run
def test_run_writes_the_page_from_the_rules_inputs(run_results: Path, tmp_path: Path) -> None:
    files = page_files(run_results, tmp_path / "run")
    inputs = SimpleNamespace(units=str(files["units"]), problems=str(files["problems"]),
                             predictions=str(files["predictions"]), metrics=[str(files["metrics"])],
                             fusion=[str(p) for p in files["fusion_dirs"]],
                             faces=[str(p) for p in files["faces"]],
                             transcripts=[str(p) for p in files["transcripts"]], media=[str(p) for p in files["media"]])
    out = tmp_path / "run" / "index.html"
    log = tmp_path / "logs" / "index_page.log"
    run(Job(input=inputs, output=[str(out)], config={"run_name": "demo", "report": {"max_videos": 2}},
            log=str(log), rule="index_page"))
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "affectflow run <code>demo</code>" in text
    assert "report.max_videos</code> = 2" in text and 'id="table-expr"' in text
    assert "index page:" in log.read_text()
    assert not list(out.parent.glob("*.tmp*"))  # written atomically


@pytest.mark.slow  # needs the shared e2e run
def test_the_library_function_needs_no_metrics_when_no_task_was_trained(run_results: Path, tmp_path: Path) -> None:
    files = page_files(run_results, tmp_path, with_tasks=False)
    out = run_index_page(tmp_path / "index.html", options={"max_videos": 1}, **files)
    text = out.read_text(encoding="utf-8")
    assert "This run trained no task" in text and "1 of " in text
