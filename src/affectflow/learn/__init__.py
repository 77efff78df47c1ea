"""Learning stage: feature alignment, video descriptors, MLP heads and the AH video filter.

Submodules (import them directly; ``heads`` pulls in torch, and so do ``rows`` and a learn run's steps):

* :mod:`affectflow.learn.align` -- audio/text features onto face frames, missing-face policies;
* :mod:`affectflow.learn.stats` -- video-level STAT descriptors (mean, std, min, max);
* :mod:`affectflow.learn.heads` -- MLP heads and their seeded, deterministic trainers;
* :mod:`affectflow.learn.video_classifier` -- AH video-level logistic regression filter;
* :mod:`affectflow.learn.rows` -- one video's head rows, shared by training and prediction.

One learn run (:func:`affectflow.learn.pipeline.learn_task`, what the ``learn`` stage calls), a module per
step: ``settings`` (the typed options), ``videos`` (read, align, label), ``matrices`` (stack, z-score),
``training`` (the head), ``video_classifier_fit`` (AH), ``scoring`` (``metrics.json``) and ``predictions``
(``predictions.h5``); ``errors`` holds :class:`~affectflow.learn.errors.LearnError`.

Fusion, metrics, sweeps and submission files live in ``affectflow.fuse.postprocess``,
``affectflow.evaluate.metrics``, ``affectflow.fuse.sweeps`` and ``affectflow.submit.formats``.
"""
