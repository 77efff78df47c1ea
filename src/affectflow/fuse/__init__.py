"""Late fusion: blending, confidence filtering, smoothing and the val-only sweeps that choose them.

* :mod:`affectflow.fuse.postprocess` -- the post-processing of one video (blend, filter, smooth, video filter);
* :mod:`affectflow.fuse.sweeps` -- sweeps of one parameter, on val only, and their plots.

One fusion (:func:`affectflow.fuse.pipeline.fuse_task`, what the ``fuse`` stage calls), a module per step:
``settings`` (the typed options), ``inputs`` (learn predictions, shared videos, frames, val labels),
``pretrained`` and ``class_names`` (the confidence filter's input), ``video_filter`` (the AH video
decisions), ``selection`` (w -> t -> k -> video filter), ``tables`` (the paper's table rows) and
``outputs`` (the files); ``errors`` holds :class:`~affectflow.fuse.errors.FuseError`.
"""
