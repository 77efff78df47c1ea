"""Speech to text, and text to vectors: Whisper transcripts and one embedding per transcript segment.

Transcripts: :mod:`affectflow.text.transcript` (the record, written by the
``transcripts`` stage and read by ``text_features``), :mod:`affectflow.text.whisper`
(the faster-whisper and openai-whisper backends) and :mod:`affectflow.text.asr`
(choosing a backend, and not sending silence to it). Embeddings:
:mod:`affectflow.text.encoders` (local ``transformers`` checkpoints),
:mod:`affectflow.text.api_clients` (the OpenAI and GigaChat embedding APIs),
:mod:`affectflow.text.loading` (which encoder a registry model gets) and
:mod:`affectflow.text.embedding` (a shard's segments to per-video records). The
stages (:mod:`affectflow.stages.transcripts`, :mod:`affectflow.stages.text_features`)
are wiring only.
"""
