# Weight files: fetched and verified once per model on the submit host (a
# local rule), so compute nodes need no internet. The manifest each job writes
# pins the exact bytes; feature rules depend on their own model's manifest only,
# so adding a model adds jobs and touches nothing else.


rule fetch_model:
    """Fetch a model's weight files (or find them in the models folder), verify their sha256, write the manifest."""
    output:
        f"{OUT}/models/{{model}}.json",
    params:
        key=lambda wc: KEYS.fetch_model(wc.model),
    log:
        f"{OUT}/logs/models/{{model}}.log",
    localrule: True
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/fetch_model.py"
