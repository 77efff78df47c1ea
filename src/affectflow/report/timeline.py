"""One video's timeline as a PNG: what was predicted when, next to what was there to see and hear.

A number in a metric table says how good a run is; a timeline says why a video
went wrong: class probabilities over time (the EXPR task's fused posteriors,
else the first face model's softmax), P(A/H), the per-frame labels where the
video has them, whether a face was found, and the transcript's words on the
same clock. Drawn with matplotlib's Agg canvas (no display, no global pyplot
state); every string from data is drawn with ``parse_math=False``, in fonts
that have its characters where one is installed (:mod:`affectflow.report.fonts`).

A table with a ``person`` column (``faces.people: all``: a row per frame and
person) gets one strip per person instead of the probability lines (several
people's lines on one axis cannot be read): its most probable class of the
first face model on each frame it is seen in, with the person's face crop
beside the strip.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from affectflow.core.vocabulary import EMI_EMOTIONS, EXPR_CLASSES
from affectflow.report.columns import PredictionColumns
from affectflow.report.fonts import FontChoice, drawing_with, fonts_for

_PALETTE = ("#1f77b4", "#d62728", "#8c564b", "#9467bd", "#2ca02c", "#17becf", "#ff7f0e", "#7f7f7f",
            "#e377c2", "#bcbd22")
_FACE = ListedColormap(["#f2f2f2", "#4d4d4d"])
#: A/H (line and strips): a colour no class line has
AH_COLOUR = "#a50026"
_AH = ListedColormap(["#e8e8e8", AH_COLOUR])
_EXPR = ListedColormap(list(_PALETTE[:len(EXPR_CLASSES)]))
MAX_WORDS = 300
#: people drawn with a strip each (the first ids; the predictions table has them all)
MAX_PEOPLE = 12
#: inches of a person's strip (its thumbnail is as tall)
PERSON_STRIP_IN = 0.5


@dataclass(frozen=True)
class TimelineInputs:
    """One video's rows of the predictions table and what the report knows besides.

    ``labels``: per task, the per-row labels of a frame task (EXPR class index, -1 invalid; AH 0/1) or the
    video's labels of a video task (EMI's six intensities, AH-video's ``[0|1]``); ``words``: transcript
    word start times (s) and texts.
    """

    video_id: str
    rows: pd.DataFrame
    columns: PredictionColumns
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    words: tuple[np.ndarray, Sequence[str]] | None = None
    #: RGB face crop of each person (``faces.people: all``), drawn beside the person's strip
    thumbnails: Mapping[int, np.ndarray] = field(default_factory=dict)


def people(rows: pd.DataFrame) -> list[int]:
    """The person ids of a video's rows, ascending (none without a ``person`` column)."""
    if "person" not in rows:
        return []
    return sorted(int(p) for p in pd.unique(rows["person"].dropna()))


def _edges(t: np.ndarray) -> np.ndarray:
    """Cell edges around each timestamp (midpoints; half a step beyond the ends)."""
    if len(t) == 0:
        return np.array([0.0, 1.0])
    if len(t) == 1:
        return np.array([t[0] - 0.02, t[0] + 0.02])
    mid = (t[1:] + t[:-1]) / 2
    return np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])


def _has_values(rows: pd.DataFrame, cols: Sequence[str]) -> bool:
    present = [c for c in cols if c in rows]
    return bool(present) and bool(np.isfinite(rows[present].to_numpy(float)).any())


def _probabilities(ax: Axes, t: np.ndarray, x: TimelineInputs) -> None:
    """EXPR's posteriors where the video has any, else the first face model's softmax."""
    if "expr" in x.columns.tasks and _has_values(x.rows, [f"expr:{c}" for c in EXPR_CLASSES]):
        names, owner, what = EXPR_CLASSES, "expr", "EXPR posteriors"
    else:
        owner = x.columns.first_model_with_classes() or ""
        names, what = x.columns.model_classes(owner), f"{owner} softmax"
        if "expr" in x.columns.tasks:
            what += " (no EXPR posteriors)"
    marker = "o" if len(t) < 3 else None
    for i, name in enumerate(names):
        col = f"{owner}:{name}"
        if col in x.rows:
            ax.plot(t, x.rows[col].to_numpy(float), color=_PALETTE[i % len(_PALETTE)], lw=1.2, label=name,
                    marker=marker)
    if not names:
        ax.text(0.5, 0.5, "no class probabilities in the predictions", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(what, fontsize=8)
    if names:
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)


def _ah(ax: Axes, t: np.ndarray, x: TimelineInputs) -> None:
    ax.plot(t, x.rows["ah:probability"].to_numpy(float), color=AH_COLOUR, lw=1.2, label="P(A/H)")
    ax.axhline(0.5, color="#999999", lw=0.6, ls="--")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("AH", fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)


def _strips(x: TimelineInputs) -> list[tuple[str, np.ndarray, ListedColormap]]:
    """(name, values with NaN for none, colormap) of each strip row, top to bottom."""
    strips = [("face", x.rows["face"].to_numpy(float), _FACE)]
    if "expr:label" in x.rows:
        index = {c: float(i) for i, c in enumerate(EXPR_CLASSES)}
        strips.append(("EXPR predicted", np.array([index.get(v, np.nan) for v in x.rows["expr:label"]]), _EXPR))
    if "expr" in x.labels:
        lab = np.asarray(x.labels["expr"], float)
        strips.append(("EXPR label", np.where(lab < 0, np.nan, lab), _EXPR))
    if "ah:label" in x.rows:
        strips.append(("AH predicted", pd.to_numeric(x.rows["ah:label"], errors="coerce").to_numpy(float), _AH))
    if "ah" in x.labels:
        strips.append(("AH label", np.asarray(x.labels["ah"], float), _AH))
    return strips


def _draw_strips(ax: Axes, t: np.ndarray, strips: list[tuple[str, np.ndarray, ListedColormap]]) -> None:
    edges = _edges(t)
    for k, (_name, values, cmap) in enumerate(strips):
        y = len(strips) - 1 - k
        ax.pcolormesh(edges, [y + 0.1, y + 0.9], np.ma.masked_invalid(values[None, :]), cmap=cmap,
                      vmin=0, vmax=cmap.N - 1, shading="flat")
    ax.set_yticks([len(strips) - 1 - k + 0.5 for k in range(len(strips))], [s[0] for s in strips], fontsize=7)
    ax.set_ylim(0, len(strips))


def _words(ax: Axes, x: TimelineInputs) -> None:
    ax.set_yticks([])
    ax.set_ylabel("words", fontsize=8)
    if x.words is None or len(x.words[0]) == 0:
        ax.text(0.5, 0.5, "no transcript words", ha="center", va="center", fontsize=7, color="#777777",
                transform=ax.transAxes)
        return
    starts, texts = x.words
    for k, (s, w) in enumerate(list(zip(starts, texts, strict=True))[:MAX_WORDS]):
        ax.axvline(float(s), color="#bbbbbb", lw=0.5)
        ax.text(float(s), 0.95 if k % 2 == 0 else 0.45, str(w).strip(), fontsize=7, rotation=0, va="top",
                ha="left", clip_on=True, parse_math=False)
    ax.set_ylim(0, 1)


def _first(rows: pd.DataFrame, col: str) -> float:
    values = pd.to_numeric(rows[col], errors="coerce").dropna() if col in rows else pd.Series(dtype=float)
    return float(values.iloc[0]) if len(values) else float("nan")


def title_lines(x: TimelineInputs) -> list[str]:
    """The video id, then one line per video-level task: prediction (and label when known)."""
    lines = [x.video_id]
    if "emi" in x.columns.tasks:
        values = [_first(x.rows, f"emi:{e}") for e in EMI_EMOTIONS]
        pred = "none" if np.isnan(values).all() else ", ".join(
            f"{e} {v:.2f}" for e, v in zip(EMI_EMOTIONS, values, strict=True))
        lab = x.labels.get("emi")
        known = "" if lab is None else " | label: " + ", ".join(f"{float(v):.2f}" for v in np.ravel(lab))
        lines.append(f"EMI: {pred}{known}")
    if "ah_video" in x.columns.tasks:
        p, pred = _first(x.rows, "ah_video:probability"), _first(x.rows, "ah_video:label")
        lab = x.labels.get("ah_video")
        known = "" if lab is None else f" | label: {int(np.ravel(lab)[0])}"
        shown = "none" if np.isnan(pred) else f"{int(pred)} (P(A/H) {p:.2f})"
        lines.append(f"AH-video: predicted {shown}{known}")
    return lines


def _person_strips(x: TimelineInputs, frames: pd.DataFrame) -> tuple[list[tuple[str, np.ndarray, ListedColormap]],
                                                                       list[int], tuple[str, ...]]:
    """One strip per person (the first :data:`MAX_PEOPLE`) over ``frames`` (a row per analysed frame): the
    index of the first face model's most probable class where the person is seen, NaN elsewhere; the ids drawn
    and the class names."""
    owner = x.columns.first_model_with_classes() or ""
    names = x.columns.model_classes(owner)
    cmap = ListedColormap(list(_PALETTE[:max(1, len(names))]))
    pos = pd.Index(frames["frame"].to_numpy(np.int64))
    shown = people(x.rows)[:MAX_PEOPLE]
    strips = []
    for p in shown:
        own = x.rows[x.rows["person"] == p]
        values = np.full(len(frames), np.nan)
        if names:
            probs = own[[f"{owner}:{c}" for c in names]].to_numpy(float)
            seen = np.isfinite(probs).all(axis=1)
            at = pos.get_indexer(own["frame"].to_numpy(np.int64))
            values[at[seen]] = probs[seen].argmax(axis=1)
        strips.append((f"person {p}", values, cmap))
    return strips, shown, names


def _class_legend(ax: Axes, names: Sequence[str], owner: str) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=_PALETTE[i % len(_PALETTE)], label=n) for i, n in enumerate(names)]
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(handles), fontsize=7,
                  frameon=False, title=f"most probable class of {owner}", title_fontsize=7)


def drawn_texts(x: TimelineInputs) -> list[str]:
    """The strings from data that the timeline draws: its title lines and the words shown."""
    words = [] if x.words is None else [str(w).strip() for w in list(x.words[1])[:MAX_WORDS]]
    return [*title_lines(x), *words]


def render_timeline(x: TimelineInputs, width_in: float = 11.0, dpi: int = 80, fonts: FontChoice | None = None
                    ) -> bytes:
    """The timeline PNG of one video (see the module docstring), drawn with ``fonts`` (by default those that
    :func:`~affectflow.report.fonts.fonts_for` gives for :func:`drawn_texts`)."""
    with drawing_with(fonts or fonts_for(drawn_texts(x))):
        if people(x.rows):
            return _render_people(x, width_in, dpi)
        return _render_frames(x, width_in, dpi)


def _render_frames(x: TimelineInputs, width_in: float, dpi: int) -> bytes:
    """The timeline of a table with a row per frame: probabilities, A/H, label strips, words."""
    t = x.rows["timestamp"].to_numpy(float)
    strips = _strips(x)
    has_ah = "ah:probability" in x.rows
    heights = [2.6] + ([1.0] if has_ah else []) + [0.25 * len(strips) + 0.1, 0.6]
    top, bottom, gap = 0.25 + 0.17 * len(title_lines(x)), 0.45, 0.12
    height = top + bottom + sum(heights) + gap * (len(heights) - 1)
    fig = Figure(figsize=(width_in, height), dpi=dpi)  # fixed margins: constrained layout doubles the time
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=1.0 / width_in, right=1 - 1.45 / width_in, top=1 - top / height, bottom=bottom / height,
                        hspace=gap / (sum(heights) / len(heights)))
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    _probabilities(axes[0], t, x)
    if has_ah:
        _ah(axes[1], t, x)
    _draw_strips(axes[-2], t, strips)
    _words(axes[-1], x)
    edges = _edges(t)
    axes[-1].set_xlim(float(edges[0]), float(edges[-1]))
    axes[-1].set_xlabel("time (s from the first frame)", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.suptitle("\n".join(title_lines(x)), fontsize=9, x=0.01, y=1 - 0.08 / height, ha="left", va="top",
                 parse_math=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _render_people(x: TimelineInputs, width_in: float, dpi: int) -> bytes:
    """The timeline of a table with a row per frame and person: a face strip, one strip per person with its
    thumbnail at its right end, the words. The strips' axis counts in inches, so thumbnails are square."""
    frames = x.rows.drop_duplicates("frame").sort_values("frame")
    t = frames["timestamp"].to_numpy(float)
    face = x.rows.groupby("frame", sort=True)["face"].max().to_numpy(float)
    person_strips, shown, names = _person_strips(x, frames)
    pad, face_h, tall = 0.05, 0.2, PERSON_STRIP_IN
    strip_in = pad + face_h + pad + tall * len(person_strips)
    below_top = [(pad, pad + face_h)] + [(2 * pad + face_h + k * tall, 2 * pad + face_h + (k + 1) * tall - pad)
                                         for k in range(len(person_strips))]
    spans = [(strip_in - b, strip_in - a) for a, b in below_top]  # (bottom, top) of each strip, in inches
    heights = [strip_in, 0.6]
    top, bottom, gap = 0.25 + 0.17 * len(title_lines(x)) + 0.45, 0.45, 0.12
    height = top + bottom + sum(heights) + gap
    fig = Figure(figsize=(width_in, height), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=1.0 / width_in, right=1 - 1.45 / width_in, top=1 - top / height, bottom=bottom / height,
                        hspace=gap / (sum(heights) / len(heights)))
    ax, words = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    edges = _edges(t)
    strips = [("face", face, _FACE), *person_strips]
    for (lo, hi), (_name, values, cmap) in zip(spans, strips, strict=True):
        ax.pcolormesh(edges, [lo, hi], np.ma.masked_invalid(values[None, :]), cmap=cmap, vmin=0, vmax=cmap.N - 1,
                      shading="flat")
    ax.set_yticks([(lo + hi) / 2 for lo, hi in spans], [name for name, _, _ in strips], fontsize=7)
    ax.set_ylim(0, strip_in)
    _class_legend(ax, names, x.columns.first_model_with_classes() or "")
    _words(words, x)
    words.set_xlim(float(edges[0]), float(edges[-1]))
    words.set_xlabel("time (s from the first frame)", fontsize=8)
    for a in (ax, words):
        a.tick_params(labelsize=7)
    box = ax.get_position()
    for (lo, hi), p in zip(spans[1:], shown, strict=True):
        crop = x.thumbnails.get(p)
        if crop is None:
            continue
        h = (hi - lo) / strip_in * box.height
        thumb = fig.add_axes((box.x1 + 0.05 / width_in, box.y0 + lo / strip_in * box.height, h * height / width_in, h))
        thumb.imshow(np.asarray(crop))
        thumb.set_axis_off()
    fig.suptitle("\n".join(title_lines(x)), fontsize=9, x=0.01, y=1 - 0.08 / height, ha="left", va="top",
                 parse_math=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
