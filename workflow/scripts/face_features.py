# rule face_features: the stage's run() does the work (affectflow.stages.face_features).
from affectflow.core.job import Job
from affectflow.stages.face_features import run

run(Job.from_snakemake(snakemake))
