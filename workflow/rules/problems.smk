# Every video a stage skipped or warned about, in one table.


rule problems:
    """Every video a stage skipped or warned about, in one table (affectflow.stages.problems)."""
    input:
        media=expand(f"{OUT}/media/{{shard}}.h5", shard=SHARDS),
        faces=expand(f"{OUT}/faces/{DETECTOR}/{{shard}}.h5", shard=SHARDS),
        # frame label files are compared with the decoded frame counts (stage `labels`)
        units=f"{OUT}/units.tsv",
        labels=sorted({u.labels(t) for u in UNITS for t in ("expr", "ah")} - {""}),
    output:
        f"{OUT}/problems.tsv",
    params:
        key=KEYS.problems(),
        # the files of folder datasets that are not videos (the key holds their digest)
        skipped=[vars(s) for s in UNITS.skipped],
    log:
        f"{OUT}/logs/problems.log",
    localrule: True
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/problems.py"
