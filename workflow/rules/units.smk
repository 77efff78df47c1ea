# The units table: one row per video (a local rule: cheap, needed by learning).


rule units:
    """List the configured datasets' videos (id, path, split, shard, label files) in units.tsv."""
    output:
        f"{OUT}/units.tsv",
    params:
        key=KEYS.units_table(),
    log:
        f"{OUT}/logs/units.log",
    localrule: True
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/units.py"
