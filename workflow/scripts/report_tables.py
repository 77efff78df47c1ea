from affectflow import joblog
from affectflow.report_tables import write_report_tables

joblog.setup(snakemake.log[0])
write_report_tables(dict(snakemake.params.metrics), snakemake.output.csv, snakemake.output.html)
