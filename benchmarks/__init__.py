"""Speed and scale measurements of affectflow: ``python -m benchmarks.run [--quick]`` (see docs/performance.md)."""

import os

# The stages' progress bars would bury the results table; tqdm reads this when it is first imported.
os.environ.setdefault("TQDM_DISABLE", "1")
