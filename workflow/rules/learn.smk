# Heads trained per task and feature set (paper section 3). A feature set is a
# list of modalities ("face/<model>", "audio/<model>", "text/<asr>/<model>");
# several modalities are early fusion. Adding a feature set adds only its jobs.


rule learn:
    """Train one head on split train, early-stop and report on val, predict val and test."""
    input:
        unpack(feature_set_inputs),  # first: learn_mem sizes these
        units=f"{OUT}/units.tsv",
        media=expand(f"{OUT}/media/{{shard}}.h5", shard=SHARDS),
        labels=lambda wc: sorted({u.labels(wc.task) for u in UNITS if u.labels(wc.task)}),
    output:
        metrics=f"{OUT}/models/{{task}}/{{feature_set}}/metrics.json",
        head=f"{OUT}/models/{{task}}/{{feature_set}}/head.pt",
        predictions=f"{OUT}/models/{{task}}/{{feature_set}}/predictions.h5",
    params:
        key=lambda wc: KEYS.learn(wc.task, wc.feature_set),
    log:
        f"{OUT}/logs/learn/{{task}}/{{feature_set}}.log",
    benchmark:
        f"{OUT}/benchmarks/learn/{{task}}/{{feature_set}}.tsv"
    threads: 2
    resources:
        mem_mb=learn_mem,
        runtime=per_attempt(RUNTIME_MIN["learn"]),
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/learn.py"
