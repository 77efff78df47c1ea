"""Random-weight, architecture-identical stand-ins for models that cannot be had offline.

Tests and the offline demo cannot download most models. A stand-in is the same
network with seeded random weights, written in the upstream file format so the
real loading code runs on it; nothing imitates a trained model's output. By
what they build: :mod:`.face` (EmotiEffLib and DDAMFN face models), :mod:`.detector`
(RetinaFace MobileNet-0.25), :mod:`.speech` (wav2vec 2.0, HuBERT), :mod:`.roberta`
(RoBERTa-GoEmotions and its tokenizer) and :mod:`.whisper` (openai-whisper); the
shared steps are :mod:`.seeding`, :mod:`.random_weights`, :mod:`.calibration`,
:mod:`.export`, :mod:`.hf_checkpoint` and :mod:`.cache`. Builders register
themselves by registry model name (:mod:`.registry`);
:func:`affectflow.models.standins.build.build_standin` builds one by name.

Details: docs/models.md, sections "Face stand-ins" and "Speech and text stand-ins".
"""

