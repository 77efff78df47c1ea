# rule submit_<task>: the stage's run() does the work (affectflow.stages.submit).
from affectflow.core.job import Job
from affectflow.stages.submit import run

run(Job.from_snakemake(snakemake))
