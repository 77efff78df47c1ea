# rule predictions: the stage's run() does the work (affectflow.stages.predictions).
from affectflow.core.job import Job
from affectflow.stages.predictions import run

run(Job.from_snakemake(snakemake))
