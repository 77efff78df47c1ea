from affectflow import joblog
from affectflow.fuse_stage import run_fuse

joblog.setup(snakemake.log[0])
run_fuse(
    snakemake.params.task,
    snakemake.input.units,
    list(snakemake.input.media),
    dict(snakemake.params.predictions),
    list(snakemake.params.pretrained) or None,
    snakemake.output[0],
    dict(snakemake.params.cfg),
)
