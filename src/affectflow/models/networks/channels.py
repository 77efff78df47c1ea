"""Channel counts as the reference implementations round them, shared by every network rebuilt here so that
the layer widths, and so the verified weights' shapes, come out the same."""

from __future__ import annotations


def make_divisible(v: float, divisor: int = 8) -> int:
    """timm's (and the RetinaFace MobileNet's) ``make_divisible``: round to a multiple of ``divisor``, never more
    than 10% down."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new
