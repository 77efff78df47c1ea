# Late fusion per task: blending, confidence filtering, smoothing, with every
# parameter chosen on val by sweeps; plots and tables go into the report.


rule fuse:
    """Sweep w, t and k on val, apply the chosen post-processing to test."""
    input:
        units=f"{OUT}/units.tsv",
        media=expand(f"{OUT}/media/{{shard}}.h5", shard=SHARDS),
        # in the order of the fusion's feature_sets (w weighs the first)
        predictions=lambda wc: expand(
            f"{OUT}/models/{wc.task}/{{fs}}/predictions.h5", fs=fusion_sets(wc.fusion)
        ),
        pretrained=lambda wc: pretrained_shards() if wc.task == "expr" else [],
    output:
        report(
            directory(f"{OUT}/fusion/{{task}}/{{fusion}}"),
            patterns=["{name}.png"],
            caption="../report/sweep.rst",
            category="Fusion sweeps",
            subcategory="{task}",
        ),
    params:
        key=lambda wc: KEYS.fuse(wc.task, wc.fusion),
    log:
        f"{OUT}/logs/fuse/{{task}}/{{fusion}}.log",
    benchmark:
        f"{OUT}/benchmarks/fuse/{{task}}/{{fusion}}.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(RUNTIME_MIN["fuse"]),
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/fuse.py"
