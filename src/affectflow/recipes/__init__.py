"""Ready-made inputs: the offline demo dataset."""
