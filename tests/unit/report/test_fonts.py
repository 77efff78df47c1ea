"""Video ids and words in any script are drawn with a font that has them, or the page says which are not."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pandas as pd
import pytest
from matplotlib import font_manager
from PIL import Image

from affectflow.report import fonts
from affectflow.report.columns import parse_columns
from affectflow.report.fonts import BASE_FONT, FontChoice, fonts_for
from affectflow.report.timeline import TimelineInputs, drawn_texts, render_timeline

CJK = "视频 日本語 한국어"
LINEAR_A = "\U00010600\U00010601"  # a script no usual font has


@pytest.fixture(scope="module")
def cjk_font() -> str:
    """The installed CJK font (`make test` installs fonts-wqy-microhei: a test without it could not fail)."""
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        listed = ""
    if not listed.strip():
        pytest.fail("no CJK font is installed: run `make test`, which installs fonts-wqy-microhei")
    return listed.split(":")[0]


def _timeline(video_id: str, words: list[str], choice: FontChoice | None = None) -> np.ndarray:
    rows = pd.DataFrame({"video_id": video_id, "frame": [0, 1, 2], "timestamp": [0.0, 0.1, 0.2],
                         "face": [1, 1, 0], "m:Happy": [0.2, 0.7, np.nan], "m:Sad": [0.8, 0.3, np.nan]})
    x = TimelineInputs(video_id, rows, parse_columns(list(rows.columns)),
                       words=(np.array([0.0, 0.1][:len(words)]), words))
    return np.asarray(Image.open(io.BytesIO(render_timeline(x, fonts=choice))).convert("L"))


def test_latin_text_needs_no_other_font() -> None:
    assert fonts_for(["a $b$ <c> & 'd' é ß Ω", "  "]) == FontChoice((BASE_FONT,))


def test_cjk_text_gets_an_installed_font_that_has_it(cjk_font: str) -> None:
    choice = fonts_for(["clip_01", CJK])
    assert choice.families[0] == BASE_FONT and len(choice.families) >= 2 and choice.missing == ""
    have = set()
    for family in choice.families:
        have |= fonts._charmap(font_manager.findfont(font_manager.FontProperties(family=family),
                                                     fallback_to_default=False))
    assert {ord(c) for c in CJK if not c.isspace()} <= have
    assert choice.note() == ""


def test_characters_no_font_has_are_named_with_advice() -> None:
    choice = fonts_for(["clip", LINEAR_A])
    assert choice.missing == LINEAR_A and "Last Resort" not in " ".join(choice.families)
    assert choice.note().startswith(f"2 character(s) have no installed font and are drawn as boxes ({LINEAR_A}): "
                                    "install a font")


def test_a_timeline_with_a_cjk_id_and_words_is_drawn_in_the_cjk_font(cjk_font: str) -> None:
    x_words = ["你好", "世界"]
    x = TimelineInputs("采访_01", pd.DataFrame(), parse_columns(["video_id", "frame", "timestamp", "face"]),
                       words=(np.array([0.0, 0.1]), x_words))
    assert drawn_texts(x) == ["采访_01", "你好", "世界"]
    chosen = _timeline("采访_01", x_words)  # fonts_for(drawn_texts(...)), as the page draws it
    boxes = _timeline("采访_01", x_words, FontChoice((BASE_FONT,)))
    latin = _timeline("caifang_01", ["nihao", "shijie"])
    assert chosen.shape == boxes.shape == latin.shape
    assert (chosen != boxes).any()  # other glyphs than DejaVu's placeholders
    assert (_timeline("caifang_01", ["nihao", "shijie"], fonts_for(["采访"])) == latin).all()  # Latin: unchanged


def test_a_font_installed_after_matplotlibs_cache_was_made_is_found(cjk_font: str) -> None:
    """matplotlib lists the system's fonts once, in a cache; a font installed later is looked for only when a
    character lacks one."""
    manager = font_manager.fontManager
    kept = list(manager.ttflist)
    try:
        manager.ttflist = [f for f in kept if f.fname != cjk_font]
        fonts._add_fonts_installed_since_the_cache.cache_clear()
        assert fonts_for(["clip"]).families == (BASE_FONT,)
        assert all(f.fname != cjk_font for f in manager.ttflist)  # nothing looked for: nothing lacked
        assert fonts_for([CJK]).missing == ""
        assert any(f.fname == cjk_font for f in manager.ttflist)
    finally:
        manager.ttflist = kept
        fonts._add_fonts_installed_since_the_cache.cache_clear()
