# rule units: the stage's run() does the work (affectflow.stages.units).
from affectflow.core.job import Job
from affectflow.stages.units import run

run(Job.from_snakemake(snakemake))
