# affectflow: raw videos -> audio, face crops, embeddings, trained heads and
# fused emotion predictions. Stages live in workflow/rules/*.smk; the logic
# they call lives in the affectflow package (src/affectflow).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    shard=r"s\d{4}",
    model=r"[A-Za-z0-9_]+",
    asr=r"[A-Za-z0-9_]+",


include: "workflow/rules/units.smk"
include: "workflow/rules/media.smk"
include: "workflow/rules/faces.smk"
include: "workflow/rules/problems.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/learn.smk"
include: "workflow/rules/fuse.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        f"{OUT}/units.tsv",
        f"{OUT}/problems.tsv",
        expand(f"{OUT}/media/{{shard}}.h5", shard=SHARDS),
        expand(f"{OUT}/faces/{DETECTOR}/{{shard}}.h5", shard=SHARDS),
        sheets_targets(),
        expand(f"{OUT}/features/face/{{model}}/{{shard}}.h5", model=config["features"]["face"], shard=SHARDS),
        expand(f"{OUT}/features/audio/{{model}}/{{shard}}.h5", model=config["features"]["audio"], shard=SHARDS),
        expand(
            f"{OUT}/features/text/{{asr}}/{{model}}/{{shard}}.h5",
            asr=config["features"]["asr"],
            model=config["features"]["text"],
            shard=SHARDS,
        ),
        expand(f"{OUT}/fusion/{{task}}/{{fusion}}", task=config["tasks"], fusion=config["fusions"]),
        [submission_path(t) for t in SUBMIT_TASKS] if config["submit_fusion"] else [],
        f"{OUT}/metrics.csv" if config["tasks"] else [],
        f"{OUT}/predictions.parquet",
        f"{OUT}/bundle" if OWN.own else [],
        f"{OUT}/index.html",
    default_target: True
