# rule transcripts: the stage's run() does the work (affectflow.stages.transcripts).
from affectflow.core.job import Job
from affectflow.stages.transcripts import run

run(Job.from_snakemake(snakemake))
