from affectflow.core import joblog
from affectflow.plan.rerun import model_pins_for
from affectflow.stages.fetch_model import prepare_model

joblog.setup(snakemake.log[0])
name = snakemake.wildcards.model
prepare_model(
    name,
    snakemake.config["models_dir"],
    pins=model_pins_for(name, snakemake.config["model_pins"]),
    standin=name in snakemake.config["features"]["standins"],
    key=snakemake.params.key,
).save(snakemake.output[0])
