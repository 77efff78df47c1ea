# Heads trained per task and feature set (paper section 3). A feature set is a
# list of modalities ("face/<model>", "audio/<model>", "text/<asr>/<model>");
# several modalities are early fusion. Adding a feature set adds only its jobs.


def modality_shards(label):
    """Feature shard paths of one modality label, for every shard."""
    kind, _, rest = label.partition("/")
    return expand(f"{OUT}/features/{kind}/{rest}/{{shard}}.h5", shard=SHARDS)


def feature_set_shards(wildcards):
    return {label: modality_shards(label) for label in config["feature_sets"][wildcards.feature_set]}


def learn_cfg(wildcards):
    learn = config["learn"]
    return {**learn.get("common", {}), **learn.get(wildcards.task, {})}


rule learn:
    """Train one head on split train, early-stop and report on val, predict val and test."""
    input:
        unpack(lambda wc: {f"f{i}": paths for i, paths in enumerate(feature_set_shards(wc).values())}),
        units=f"{OUT}/units.tsv",
        media=expand(f"{OUT}/media/{{shard}}.h5", shard=SHARDS),
    output:
        metrics=f"{OUT}/models/{{task}}/{{feature_set}}/metrics.json",
        head=f"{OUT}/models/{{task}}/{{feature_set}}/head.pt",
        predictions=f"{OUT}/models/{{task}}/{{feature_set}}/predictions.h5",
    params:
        task="{task}",
        features=feature_set_shards,
        cfg=learn_cfg,
    log:
        f"{OUT}/logs/learn/{{task}}/{{feature_set}}.log",
    benchmark:
        f"{OUT}/benchmarks/learn/{{task}}/{{feature_set}}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    script:
        "../scripts/learn.py"
