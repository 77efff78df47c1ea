# rule frame_predictions: the stage's run() does the work (affectflow.stages.frame_predictions).
from affectflow.core.job import Job
from affectflow.stages.frame_predictions import run

run(Job.from_snakemake(snakemake))
