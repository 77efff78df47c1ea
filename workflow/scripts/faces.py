# rule faces: the stage's run() does the work (affectflow.stages.faces).
from affectflow.core.job import Job
from affectflow.stages.faces import run

run(Job.from_snakemake(snakemake))
