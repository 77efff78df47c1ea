# The units table: one row per video (a local rule: cheap, needed by learning).


rule units:
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
