# rule fetch_model: the stage's run() does the work (affectflow.stages.fetch_model).
from affectflow.core.job import Job
from affectflow.stages.fetch_model import run

run(Job.from_snakemake(snakemake))
