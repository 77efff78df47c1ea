"""Speech signal to vectors: a wav2vec 2.0-style encoder run on whole recordings of any length.

:mod:`affectflow.audio.speech_encoder` loads the encoder and computes one vector
per 20 ms frame (chunked, with the first GroupNorm's whole-recording statistics
from :mod:`affectflow.audio.group_norm`); :mod:`affectflow.audio.windows` pools
frames over sliding windows; :mod:`affectflow.audio.embedding` turns one
recording into the ``audio_features`` stage's record. The stage itself
(:mod:`affectflow.stages.audio_features`) is wiring only.
"""
