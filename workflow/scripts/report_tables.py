from affectflow.core import joblog
from affectflow.stages.report_tables import metrics_files, write_report_tables

joblog.setup(snakemake.log[0])
write_report_tables(metrics_files(snakemake.config), snakemake.output.csv, snakemake.output.html)
