"""Datasets: the units table (one row per video) and the adapters that build it from a challenge's layout."""
