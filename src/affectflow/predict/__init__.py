"""Predictions on any video: per-frame tables, and trained pipelines (bundles) applied to new videos.

* :mod:`affectflow.predict.bundle` -- the bundle folder: writing, verifying, describing;
* :mod:`affectflow.predict.apply` -- a bundle's heads and fusion on one video;
* :mod:`affectflow.predict.frames` -- the per-frame table and its column names.
"""
