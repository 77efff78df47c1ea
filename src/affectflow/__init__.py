"""affectflow: raw videos to emotion predictions as a restartable Snakemake workflow."""

__version__ = "0.1.0"
