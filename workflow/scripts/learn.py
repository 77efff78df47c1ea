# rule learn: input.units, input.media (list); output.metrics (…/metrics.json; its folder is out_dir);
# params.task, params.features ({label: [shard paths]}), params.cfg.
from pathlib import Path

from affectflow import joblog
from affectflow.learn.stage import run_learn

joblog.setup(snakemake.log[0])
run_learn(
    snakemake.params.task,
    snakemake.input.units,
    list(snakemake.input.media),
    {label: list(paths) for label, paths in dict(snakemake.params.features).items()},
    Path(snakemake.output.metrics).parent,
    dict(snakemake.params.cfg),
)
