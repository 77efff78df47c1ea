# rule contact_sheets: the stage's run() does the work (affectflow.stages.contact_sheets).
from affectflow.core.job import Job
from affectflow.stages.contact_sheets import run

run(Job.from_snakemake(snakemake))
