# rule text_features: the stage's run() does the work (affectflow.stages.text_features).
from affectflow.core.job import Job
from affectflow.stages.text_features import run

run(Job.from_snakemake(snakemake))
