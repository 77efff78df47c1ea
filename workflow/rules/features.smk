# Per-model embeddings over shards. The model is loaded once per shard job;
# these are the GPU rules of the cluster profile (device chosen automatically).


rule face_features:
    """Embeddings and logits of one face model for every detected face of a shard."""
    input:
        faces=f"{OUT}/faces/{DETECTOR}/{{shard}}.h5",
        model=f"{OUT}/models/{{model}}.json",
    output:
        f"{OUT}/features/face/{{model}}/{{shard}}.h5",
    params:
        key=lambda wc: KEYS.model_stage("face_features", wc.model),
    log:
        f"{OUT}/logs/features/face/{{model}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/features/face/{{model}}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(RUNTIME_MIN["face_features"]),
        gpu=GPU,
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/face_features.py"


rule audio_features:
    """wav2vec 2.0 / HuBERT vectors with their timestamps, chunked for bounded memory."""
    input:
        media=f"{OUT}/media/{{shard}}.h5",
        model=f"{OUT}/models/{{model}}.json",
    output:
        f"{OUT}/features/audio/{{model}}/{{shard}}.h5",
    params:
        key=lambda wc: KEYS.model_stage("audio_features", wc.model),
    log:
        f"{OUT}/logs/features/audio/{{model}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/features/audio/{{model}}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(RUNTIME_MIN["audio_features"]),
        gpu=GPU,
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/audio_features.py"


rule transcripts:
    """Whisper segments and word timestamps (faster-whisper or openai-whisper)."""
    input:
        media=f"{OUT}/media/{{shard}}.h5",
        model=f"{OUT}/models/{{asr}}.json",
    output:
        f"{OUT}/transcripts/{{asr}}/{{shard}}.h5",
    params:
        key=lambda wc: KEYS.model_stage("transcripts", wc.asr),
    log:
        f"{OUT}/logs/transcripts/{{asr}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/transcripts/{{asr}}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=per_attempt(6000),
        runtime=per_attempt(RUNTIME_MIN["transcripts"]),
        gpu=GPU,
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/transcripts.py"


rule text_features:
    """One embedding per transcript segment."""
    input:
        transcripts=f"{OUT}/transcripts/{{asr}}/{{shard}}.h5",
        model=f"{OUT}/models/{{model}}.json",
    output:
        f"{OUT}/features/text/{{asr}}/{{model}}/{{shard}}.h5",
    params:
        key=lambda wc: KEYS.model_stage("text_features", wc.model),
    log:
        f"{OUT}/logs/features/text/{{asr}}/{{model}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/features/text/{{asr}}/{{model}}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(RUNTIME_MIN["text_features"]),
        gpu=GPU,
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/text_features.py"
