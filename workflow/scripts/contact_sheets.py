from affectflow.core import joblog
from affectflow.faces.contact_sheet import write_contact_sheets

joblog.setup(snakemake.log[0])
write_contact_sheets(snakemake.input[0], snakemake.output[0])
