"""Late fusion: blending, confidence filtering, smoothing and the val-only sweeps that choose them."""
