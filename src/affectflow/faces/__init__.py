"""Faces in video frames: decoding in batches, detectors, the tracked target face, square crops.

The ``faces`` rule itself (options, the shard it writes) is :mod:`affectflow.stages.faces`.
"""
