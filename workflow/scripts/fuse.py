from affectflow.core import joblog
from affectflow.stages.fuse import FuseOptions, run_fuse

joblog.setup(snakemake.log[0])
task, fusion = snakemake.wildcards.task, snakemake.wildcards.fusion
options = FuseOptions.from_config(snakemake.config, task=task, fusion=fusion)
run_fuse(
    task,
    snakemake.input.units,
    list(snakemake.input.media),
    dict(zip(options.feature_sets, snakemake.input.predictions, strict=True)),
    list(snakemake.input.pretrained) or None,
    snakemake.output[0],
    options,
    key=snakemake.params.key,
)
