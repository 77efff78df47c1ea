"""The run page's HTML: one self-contained file a person opens from the results folder.

Self-contained (CSS inline, every image a base64 ``data:`` URI, no script, no
external URL) so that it can be mailed, archived or opened from a cluster's
file share as it is. Every string that comes from data -- video ids (which are
file names and may hold anything), class and feature set names, transcript
words, problem messages -- goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable

import pandas as pd

from affectflow.report.collect import RunPage, SweepPlot, VideoSection
from affectflow.report.tables import RankedTable

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:0 24px 48px;
color:#222;background:#fff;font-size:14px}
h1{margin:20px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}h3{margin:24px 0 6px}
nav a{margin-right:14px}.muted{color:#666}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #d0d0d0;padding:3px 9px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#e8f5e9;font-weight:600}tr.standin td{color:#888;font-style:italic}
.badge{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;margin-left:6px;font-style:normal}
.b-best{background:#2e7d32;color:#fff}.b-standin{background:#ffe0b2;color:#8a4b00}.b-chosen{background:#e3f2fd;color:#0d47a1}
.plots img{max-width:32%;margin:0 1% 8px 0;border:1px solid #eee}
.video{border-top:1px solid #e4e4e4;padding-top:4px}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.row img.timeline{flex:1 1 880px;max-width:100%;min-width:0}.row img.sheet{flex:0 1 400px;max-width:400px}
.notes{color:#8a4b00}code{background:#f5f5f5;padding:0 3px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(data: bytes, alt: str, cls: str = "", mime: str = "image/png") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="{cls}" alt="{_e(alt)}" src="data:{mime};base64,{b64}">'


def _pct(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"


def ranked_table_html(table: RankedTable) -> str:
    """One task's ranked table: rank, stage, row name (with its marks), the scores in percent."""
    head = "".join(f"<th>{_e(m)}{' (ranked)' if m == table.metric else ''}</th>" for m in table.metrics)
    out = [f'<table class="ranked" id="table-{_e(table.task)}"><thead><tr><th>#</th><th>stage</th><th>feature set '
           f"/ fusion</th>{head}</tr></thead><tbody>"]
    for i, r in enumerate(table.rows, 1):
        classes = " ".join(c for c, on in (("best", r.best), ("standin", r.standin)) if on)
        marks = "".join(f'<span class="badge b-{k}">{t}</span>' for k, t, on in (
            ("best", "best", r.best), ("standin", "stand-in weights", r.standin), ("chosen", "chosen", r.chosen))
            if on)
        cells = "".join(f'<td class="num">{_pct(r.scores.get(m))}</td>' for m in table.metrics)
        out.append(f'<tr class="{classes}"><td class="num">{i}</td><td>{_e(r.stage)}</td>'
                   f"<td>{_e(r.name)}{marks}</td>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _metrics(page: RunPage) -> list[str]:
    out = ['<section id="metrics"><h2>Validation metrics</h2>']
    if not page.tables:
        out.append('<p class="muted">This run trained no task: no metric tables and no sweeps.</p></section>')
        return out
    out.append('<p class="muted">Scores in percent (EMI: mean Pearson r &times; 100), rows sorted by the task\'s '
               "challenge metric. Rows marked <em>stand-in weights</em> used a model with random weights: their "
               "numbers only show that the pipeline runs.</p>")
    plots: dict[str, list[SweepPlot]] = {}
    for p in page.sweeps:
        plots.setdefault(p.task, []).append(p)
    for t in page.tables:
        out.append(f"<h3>{_e(t.task.upper())} <span class='muted'>(ranked by {_e(t.metric)})</span></h3>")
        out.append(ranked_table_html(t))
        if plots.get(t.task):
            out.append(f'<div class="plots" id="sweeps-{_e(t.task)}">')
            out += [_img(p.png, f"{p.task} {p.fusion}: sweep of {p.name}", "sweep") for p in plots[t.task]]
            out.append("</div>")
    out.append("</section>")
    return out


def _predictions(page: RunPage) -> list[str]:
    cols = page.columns
    models = "".join(f"<li><code>{_e(m)}</code>: {_e(', '.join(c))}</li>" for m, c in cols.models.items())
    tasks = ", ".join(f"<code>{_e(t)}</code>" for t in cols.tasks) or "none (the run trained no task)"
    return ['<section id="predictions"><h2>Predictions</h2>',
            f"<p><code>predictions.parquet</code>: {page.n_rows} frame rows of {page.n_videos} videos "
            "(the same rows per video in <code>predictions/&lt;video_id&gt;.csv</code>).</p>",
            f"<p>Tasks: {tasks}.</p>",
            *([f'<p id="applied-bundle">Task columns from the applied bundle {_e(page.bundle)}.</p>']
              if page.bundle else []),
            f"<p>Face models (class probabilities):</p><ul>{models or '<li>none</li>'}</ul></section>"]


def table_html(frame: pd.DataFrame, table_id: str) -> str:
    """A plain table of strings (every cell escaped)."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False, name=None))
    return f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _problems(page: RunPage) -> list[str]:
    out = ['<section id="problems"><h2>Problems</h2>']
    if page.problems.empty:
        out.append("<p>No video was skipped or warned about.</p>")
    else:
        out.append(f"<p>{len(page.problems)} rows of <code>problems.tsv</code>: every video a stage skipped "
                   "(and why) or warned about.</p>")
        out.append(table_html(page.problems, "problems-table"))
    out.append("</section>")
    return out


def _video(v: VideoSection, anchor: str) -> str:
    u = v.unit
    out = [f'<div class="video" id="{anchor}"><h3>{_e(u.video_id)}</h3>',
           f'<p class="muted">split {_e(u.split or "none")}, shard {_e(u.shard)}, {v.n_rows} frame rows</p>']
    if v.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in v.notes) + "</ul>")
    out.append('<div class="row">')
    if v.timeline is not None:
        out.append(_img(v.timeline, f"timeline of {u.video_id}", "timeline"))
    if v.sheet is not None:
        out.append(_img(v.sheet, f"contact sheet of {u.video_id}", "sheet", "image/jpeg"))
    out.append("</div></div>")
    return "".join(out)


def _videos(page: RunPage) -> list[str]:
    out = ['<section id="videos"><h2>Videos</h2>',
           "<p class='muted'>Per video: class probabilities over time, P(A/H), the strips (face found, "
           "predicted class, label where the video has one) and the transcript's words on one clock "
           "(seconds from the first frame), then the contact sheet of the face crops. With "
           "<code>faces.people: all</code>: one strip per person instead of the probabilities (the first face "
           "model's most probable class where the person is seen), with the person's face beside it.</p>"]
    if page.left_out:
        out.append(f'<p id="left-out">{len(page.videos)} of {len(page.videos) + page.left_out} videos shown '
                   f"(the first by id); {page.left_out} left out (<code>report.max_videos</code> = "
                   f"{page.max_videos}).</p>")
    out += [_video(v, f"video-{i}") for i, v in enumerate(page.videos)]
    out.append("</section>")
    return out


def render_page(page: RunPage, version: str = "") -> str:
    """The whole page as HTML text."""
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("metrics", "Metrics"), ("predictions", "Predictions"), ("problems", "Problems"), ("videos", "Videos")))
    parts: Iterable[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>affectflow run {_e(page.run_name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>affectflow run <code>{_e(page.run_name)}</code></h1>",
        f'<p class="muted">Written by affectflow {_e(version)} from this folder\'s files.</p><nav>{nav}</nav>',
        *_metrics(page), *_predictions(page), *_problems(page), *_videos(page), "</body></html>"]
    return "\n".join(parts) + "\n"
