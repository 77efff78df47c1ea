# rule media: the stage's run() does the work (affectflow.stages.media).
from affectflow.core.job import Job
from affectflow.stages.media import run

run(Job.from_snakemake(snakemake))
