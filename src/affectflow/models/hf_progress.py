"""transformers' per-load progress bar, kept out of job logs.

transformers 5 draws a tqdm bar ("Loading weights: 100%|...") on every
``from_pretrained``. A job's log then holds one carriage-return-redrawn bar per model
load, which is noise in a log read after the fact, and on a cluster a bar per job. Our
own progress (per video, per shard) is what a user follows; the load itself is quick.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def no_load_progress() -> Iterator[None]:
    """Within the block, transformers draws no progress bars; the earlier setting is restored after it."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
