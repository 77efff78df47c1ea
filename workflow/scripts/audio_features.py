# rule audio_features: the stage's run() does the work (affectflow.stages.audio_features).
from affectflow.core.job import Job
from affectflow.stages.audio_features import run

run(Job.from_snakemake(snakemake))
