# rule report_tables: the stage's run() does the work (affectflow.stages.report_tables).
from affectflow.core.job import Job
from affectflow.stages.report_tables import run

run(Job.from_snakemake(snakemake))
