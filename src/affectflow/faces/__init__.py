"""Faces in video frames: decoding in batches, detectors, the tracked target face, square crops, and the rows
they become (one video's streamed, a shard's videos in parallel).

The ``faces`` rule itself (its options and wiring) is :mod:`affectflow.stages.faces`.
"""
