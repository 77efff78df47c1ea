# rule units: output (units.tsv).
from affectflow.core import joblog
from affectflow.stages.units import write_units

joblog.setup(snakemake.log[0])
write_units(snakemake.config["datasets"], snakemake.config["n_shards"], snakemake.output[0])
