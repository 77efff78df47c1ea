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
        fingerprint=lambda wc: model_fingerprint(wc.model),
        cfg=feature_cfg,
    log:
        f"{OUT}/logs/features/face/{{model}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/features/face/{{model}}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPU,
    script:
        "../scripts/face_features.py"
