"""Fonts for text a figure draws from data: video ids (file names) and transcript words, in any script.

matplotlib draws with DejaVu Sans, which has no Chinese, Japanese, Korean or
Thai glyphs: such a video id or word came out as a row of boxes, and the job
log got a warning per glyph. :func:`fonts_for` lists DejaVu Sans and then, for
the characters it lacks, installed fonts that have them; matplotlib falls back
glyph by glyph through that list (``font.family``). Characters that no
installed font has are named, so the page can say which font to install,
instead of drawing boxes silently. matplotlib keeps its list of the system's
fonts in a cache made at its first use, so a font installed afterwards is
added here from the system's list (fontconfig) the first time it is needed.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

import matplotlib
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

#: the font figures are drawn with first (matplotlib's own, always there)
BASE_FONT = "DejaVu Sans"
#: fonts that draw every character as a placeholder (matplotlib ships Last Resort): never a fallback
PLACEHOLDER_FONTS = ("Last Resort",)
#: what to install where characters have no font
FONT_ADVICE = ("install a font that has them (Debian/Ubuntu: fonts-wqy-microhei or fonts-noto-cjk for Chinese, "
               "Japanese and Korean; fonts-noto-core for most other scripts)")


@dataclass(frozen=True)
class FontChoice:
    """The families to draw some text with, in fallback order, and the characters none of them has."""

    families: tuple[str, ...]
    missing: str = ""

    def note(self) -> str:
        """A line for the page: which characters are drawn as boxes, and what to do ('' when none is)."""
        if not self.missing:
            return ""
        shown = self.missing[:10] + ("…" if len(self.missing) > 10 else "")
        return f"{len(self.missing)} character(s) have no installed font and are drawn as boxes ({shown}): " \
               f"{FONT_ADVICE}"


@cache
def _charmap(path: str) -> frozenset[int]:
    """The code points a font file has glyphs for (a file FreeType cannot read: none)."""
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def _drawable(texts: Iterable[str]) -> set[int]:
    return {ord(c) for t in texts for c in str(t) if c.isprintable() and not c.isspace()}


@cache
def _add_fonts_installed_since_the_cache() -> None:
    known = {f.fname for f in font_manager.fontManager.ttflist}
    for path in sorted(set(font_manager.findSystemFonts()) - known):
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            font_manager.fontManager.addfont(path)


def fonts_for(texts: Iterable[str]) -> FontChoice:
    """:data:`BASE_FONT`, then the installed fonts (by family, in name order) that have characters of ``texts``
    the fonts before them lack; and the characters no installed font has."""
    needed = _drawable(texts) - _charmap(font_manager.findfont(BASE_FONT))
    families = [BASE_FONT]
    if needed:
        _add_fonts_installed_since_the_cache()
        for entry in sorted(font_manager.fontManager.ttflist, key=lambda f: (f.name, f.fname)):
            if entry.name in families or entry.name.startswith(PLACEHOLDER_FONTS):
                continue
            found = needed & _charmap(entry.fname)
            if found:
                families.append(entry.name)
                needed -= found
                if not needed:
                    break
    return FontChoice(tuple(families), "".join(sorted(map(chr, needed))))


@contextlib.contextmanager
def drawing_with(choice: FontChoice) -> Iterator[None]:
    """Draw (build and save a figure) with ``choice``'s families; the glyphs it lacks are in ``choice.missing``
    already, so matplotlib's warning per missing glyph is not repeated in the log."""
    with matplotlib.rc_context({"font.family": list(choice.families)}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
        yield
