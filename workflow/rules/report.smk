# Submissions in each challenge's own format, and the metric table of the run.

for _task in SUBMIT_TASKS:

    rule:
        name:
            f"submit_{_task}"
        input:
            units=f"{OUT}/units.tsv",
            media=expand(f"{OUT}/media/{{shard}}.h5", shard=SHARDS),
            fusion=f"{OUT}/fusion/{_task}/{config['submit_fusion']}",
            template=submission_template(_task),
        output:
            submission_path(_task),
        params:
            key=KEYS.submit(_task),
        log:
            f"{OUT}/logs/submit/{_task}.log",
        localrule: True
        conda:
            "../../envs/affectflow.yaml"
        script:
            "../scripts/submit.py"


rule report_tables:
    """One table of every learn and fuse metric of the run (the paper's Tables 1-4 layout)."""
    input:
        [f"{OUT}/models/{t}/{fs}/metrics.json" for t in config["tasks"] for fs in config["feature_sets"]],
        [f"{OUT}/fusion/{t}/{f}" for t in config["tasks"] for f in config["fusions"]],
    output:
        csv=report(f"{OUT}/metrics.csv", caption="../report/metrics.rst", category="Metrics"),
        html=report(f"{OUT}/metrics.html", caption="../report/metrics.rst", category="Metrics"),
    params:
        key=KEYS.report_tables(METRICS),
    log:
        f"{OUT}/logs/report_tables.log",
    localrule: True
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/report_tables.py"


rule index_page:
    """The run page: ranked metric tables, sweeps, predictions, problems, a timeline per video (index.html)."""
    input:
        units=f"{OUT}/units.tsv",
        problems=f"{OUT}/problems.tsv",
        predictions=f"{OUT}/predictions.parquet",
        metrics=[f"{OUT}/metrics.csv"] if ACTIVE_TASKS else [],
        fusion=[f"{OUT}/fusion/{t}/{f}" for t in ACTIVE_TASKS for f in config["fusions"]],
        faces=expand(f"{OUT}/faces/{DETECTOR}/{{shard}}.h5", shard=SHARDS),
        transcripts=expand(f"{OUT}/transcripts/{config['features']['asr'][0]}/{{shard}}.h5", shard=SHARDS)
        if config["features"].get("asr")
        else [],
        media=expand(f"{OUT}/media/{{shard}}.h5", shard=SHARDS),
        applied_bundle=SCOPE.bundle if SCOPE.bundle and not SCOPE.own else [],
    output:
        f"{OUT}/index.html",
    params:
        key=KEYS.index_page(),
    log:
        f"{OUT}/logs/index_page.log",
    localrule: True
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/index_page.py"
