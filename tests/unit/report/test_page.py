"""The run page from a real demo run's files: ranked tables, images, escaping, the cap, a run without tasks."""

from __future__ import annotations

import html
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from affectflow.report.collect import PageInputs, collect_page
from affectflow.report.page import render_page
from affectflow.report.tables import MAIN_METRIC, STANDIN_MARK, ranked_tables, read_metrics
from affectflow.testing.run_page import page_files


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html_text: str) -> _Tags:
    p = _Tags()
    p.feed(html_text)
    return p


@pytest.fixture(scope="module")
def files(run_results: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return page_files(run_results, tmp_path_factory.mktemp("page"))


def _page(files: dict, **changes) -> str:
    return render_page(collect_page(PageInputs(**{**files, **changes})), "test")


@pytest.mark.slow  # needs the shared e2e run
def test_ranked_tables_follow_the_metrics_table(files: dict) -> None:
    long = read_metrics(files["metrics"])
    tables = ranked_tables(long)
    assert [t.task for t in tables] == ["expr", "emi", "ah", "ah_video"]
    assert tables[1].metric == "pearson_r" and tables[1].metrics[0] == "pearson_r"
    for t in tables:
        scores = [r.scores.get(t.metric, math.nan) for r in t.rows]
        assert scores == sorted(scores, reverse=True)
        assert [r.best for r in t.rows] == [s == scores[0] for s in scores]
        names = set(long.loc[(long["task"] == t.task) & (long["metric"] == MAIN_METRIC[t.task]), "name"])
        assert len(t.rows) == len(names)  # every learned feature set and fusion line
        assert sum(r.standin for r in t.rows) == sum(STANDIN_MARK in n for n in names) > 0
        assert sum(r.chosen for r in t.rows) == 1
        assert not any("(" in r.name for r in t.rows)  # the marks are badges, not text


@pytest.mark.slow  # needs the shared e2e run
def test_the_page_is_self_contained_and_has_every_section(files: dict) -> None:
    text = _page(files)
    tags = _parse(text).tags
    ids = {a.get("id") for _, a in tags}
    assert {"metrics", "predictions", "problems", "videos", "problems-table"} <= ids
    assert {f"table-{t}" for t in ("expr", "emi", "ah", "ah_video")} <= ids
    imgs = [a for t, a in tags if t == "img"]
    n_units = len(pd.read_csv(files["units"], sep="\t"))
    sweeps = [p for d in files["fusion_dirs"] for p in Path(d).glob("sweep_*.png")]
    assert len([a for a in imgs if a["class"] == "sweep"]) == len(sweeps) > len(files["fusion_dirs"])
    assert len([a for a in imgs if a["class"] == "timeline"]) == n_units
    assert len([a for a in imgs if a["class"] == "sheet"]) == n_units
    assert all(a["src"].startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for a in imgs)
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text) and "<script" not in text
    problems = pd.read_csv(files["problems"], sep="\t", dtype=str, keep_default_na=False)
    assert len(problems) > 0 and all(html.escape(m) in text for m in problems["message"])


@pytest.mark.slow  # needs the shared e2e run
def test_strings_from_data_are_escaped(files: dict, tmp_path: Path) -> None:
    odd = '<b>x</b> & "q"'
    units = pd.read_csv(files["units"], sep="\t", dtype=str, keep_default_na=False)
    extra = {c: "" for c in units.columns} | {"video_id": odd, "path": "v.mp4", "split": "train", "shard": "s0000"}
    pd.concat([units, pd.DataFrame([extra])]).to_csv(tmp_path / "units.tsv", sep="\t", index=False)
    problems = pd.read_csv(files["problems"], sep="\t", dtype=str, keep_default_na=False)
    bad = {"stage": "media", "shard": "s0000", "video_id": odd, "severity": "skip", "message": "<script>x</script>"}
    pd.concat([problems, pd.DataFrame([bad])]).to_csv(tmp_path / "problems.tsv", sep="\t", index=False)
    text = _page(files, units=tmp_path / "units.tsv", problems=tmp_path / "problems.tsv", max_videos=1)
    assert "<b>x</b>" not in text and "<script" not in text
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &quot;q&quot;" in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "no rows in the predictions table" in text  # the added video has no rows


@pytest.mark.slow  # needs the shared e2e run
def test_max_videos_caps_the_video_sections_and_says_so(files: dict) -> None:
    n_units = len(pd.read_csv(files["units"], sep="\t"))
    page = collect_page(PageInputs(**{**files, "max_videos": 3}))
    assert len(page.videos) == 3 and page.left_out == n_units - 3
    ids = [v.unit.video_id for v in page.videos]
    assert ids == sorted(ids)
    text = render_page(page)
    assert f"3 of {n_units} videos shown" in text and "report.max_videos</code> = 3" in text
    assert sum(t == "img" and a["class"] == "timeline" for t, a in _parse(text).tags) == 3
    none = collect_page(PageInputs(**{**files, "max_videos": 0}))
    assert none.videos == [] and none.left_out == n_units


@pytest.mark.slow  # needs the shared e2e run
def test_a_run_that_trained_no_task(run_results: Path, tmp_path: Path) -> None:
    files = page_files(run_results, tmp_path, with_tasks=False)
    assert files["metrics"] is None and not files["fusion_dirs"]
    page = collect_page(PageInputs(**{**files, "max_videos": 2}))
    assert page.tables == [] and page.sweeps == [] and not page.columns.tasks
    text = render_page(page)
    assert "This run trained no task" in text
    tags = _parse(text).tags
    assert not any(a.get("class") == "ranked" for _, a in tags)
    assert sum(t == "img" and a["class"] == "timeline" for t, a in tags) == len(page.videos) > 0
    assert "fer_minixception" in text and "problems-table" in text


@pytest.mark.slow  # needs the shared e2e run
def test_a_run_whose_videos_were_all_skipped_gets_its_page(run_results: Path, tmp_path: Path) -> None:
    """Every video skipped before the faces stage kept it (a folder of broken files): the shard tables and the
    predictions table have no rows, and the page still lists every video and the problems."""
    from affectflow.predict.table import FrameInputs, shard_frame_table
    from affectflow.stages.predictions import run_predictions

    files = page_files(run_results, tmp_path / "run", with_tasks=False)
    shards = []
    for i, (media, faces) in enumerate(zip(files["media"], files["faces"], strict=True)):
        table = shard_frame_table([], FrameInputs(media, faces, {}, {}), ["fer_minixception"], [], None)
        assert len(table) == 0
        shards.append(tmp_path / f"s{i}.parquet")
        table.to_parquet(shards[-1], index=False)
    run_predictions(shards, tmp_path / "predictions", files["predictions"])
    assert len(pd.read_parquet(files["predictions"])) == 0
    page = collect_page(PageInputs(**{**files, "max_videos": 3}))
    assert len(page.videos) == 3 and all(v.n_rows == 0 for v in page.videos)
    assert "problems-table" in render_page(page)
