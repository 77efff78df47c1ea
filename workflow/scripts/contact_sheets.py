from affectflow.core import joblog
from affectflow.stages.contact_sheets import write_contact_sheets

joblog.setup(snakemake.log[0])
write_contact_sheets(snakemake.input[0], snakemake.output[0])
