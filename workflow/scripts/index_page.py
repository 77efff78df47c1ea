# rule index_page: the stage's run() does the work (affectflow.stages.index_page).
from affectflow.core.job import Job
from affectflow.stages.index_page import run

run(Job.from_snakemake(snakemake))
