"""What a person looks at after a run: the run page (``results/<run>/index.html``) and ``problems.tsv``.

Everything here turns finished outputs (metrics table, sweep plots, the per-frame
predictions table, contact sheets, transcripts, labels, the shards' skipped lists
and warnings) into files to read; nothing here computes a prediction or a metric.
"""
