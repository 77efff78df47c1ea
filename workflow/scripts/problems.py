# rule problems: the stage's run() does the work (affectflow.stages.problems).
from affectflow.core.job import Job
from affectflow.stages.problems import run

run(Job.from_snakemake(snakemake))
