"""Private seeded torch RNGs for the stand-in builders: the same seed gives the same weights, and the caller's
RNG state is left as it was.

Two flavours, because the builders differ: the speech and text checkpoints only
draw weights, while the face and detector builders also run float64 BatchNorm
calibration passes, several times faster on one intra-op thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG for the block and restore the caller's RNG state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def seeded_one_thread(seed: int) -> Iterator[None]:
    """A private seeded torch RNG, and one intra-op thread (several times faster for these small float64 ops)."""
    import torch

    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
