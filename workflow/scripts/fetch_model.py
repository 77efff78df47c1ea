from affectflow import joblog
from affectflow.model_manifest import prepare_model

joblog.setup(snakemake.log[0])
prepare_model(
    snakemake.wildcards.model,
    snakemake.params.models_dir,
    pins=dict(snakemake.params.pins),
    standin=snakemake.params.standin,
).save(snakemake.output[0])
