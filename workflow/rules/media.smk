rule media:
    """Probe, true frame timestamps and 16 kHz mono audio for one shard."""
    input:
        shard_videos,
    output:
        f"{OUT}/media/{{shard}}.h5",
    params:
        units=shard_units,
        cfg=config["media"],
        on_bad_video=config["on_bad_video"],
    log:
        f"{OUT}/logs/media/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/media/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/media.py"
