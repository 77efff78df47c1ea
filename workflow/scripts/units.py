from affectflow.core import joblog
from affectflow.datasets import build_units

joblog.setup(snakemake.log[0])
build_units(snakemake.config["datasets"], n_shards=snakemake.config["n_shards"]).write_tsv(snakemake.output[0])
