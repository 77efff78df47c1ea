# rule bundle: the stage's run() does the work (affectflow.stages.bundle).
from affectflow.core.job import Job
from affectflow.stages.bundle import run

run(Job.from_snakemake(snakemake))
