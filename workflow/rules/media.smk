rule media:
    """Probe, true frame timestamps and 16 kHz mono audio for one shard."""
    input:
        shard_videos,
    output:
        f"{OUT}/media/{{shard}}.h5",
    params:
        key=lambda wc: KEYS.media(wc.shard),
        units=shard_units,
    log:
        f"{OUT}/logs/media/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/media/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(2000),
        runtime=per_attempt(RUNTIME_MIN["media"]),
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/media.py"
