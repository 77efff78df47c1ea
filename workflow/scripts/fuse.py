# rule fuse: the stage's run() does the work (affectflow.stages.fuse).
from affectflow.core.job import Job
from affectflow.stages.fuse import run

run(Job.from_snakemake(snakemake))
