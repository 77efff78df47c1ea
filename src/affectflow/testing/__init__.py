"""Test support: generated media and datasets, local servers, the scratch-workflow runner, run digests.

Tests, benchmarks and the demo recipe import it; the product never does
(import-linter checks). ``REPO`` is the checkout these helpers work in.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
