"""The run page (``results/<run>/index.html``): what a person looks at after a run.

Everything here turns finished outputs (metrics table, sweep plots, the per-frame
predictions table, contact sheets, transcripts, labels, problems) into one
self-contained HTML file; nothing here computes a prediction or a metric.
"""
