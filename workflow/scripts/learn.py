# rule learn: the stage's run() does the work (affectflow.stages.learn).
from affectflow.core.job import Job
from affectflow.stages.learn import run

run(Job.from_snakemake(snakemake))
