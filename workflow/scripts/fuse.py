# rule fuse: input.units, input.media (list); output.metrics (…/metrics.json; its folder is out_dir);
# params.task, params.predictions ({feature set: predictions.h5}), params.pretrained (list or None), params.cfg.
from pathlib import Path

from affectflow import joblog
from affectflow.fuse_stage import run_fuse

joblog.setup(snakemake.log[0])
run_fuse(
    snakemake.params.task,
    snakemake.input.units,
    list(snakemake.input.media),
    dict(snakemake.params.predictions),
    list(snakemake.params.pretrained) if snakemake.params.pretrained else None,
    Path(snakemake.output.metrics).parent,
    dict(snakemake.params.cfg),
)
