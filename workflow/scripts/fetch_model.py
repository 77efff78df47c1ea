from affectflow.core import joblog
from affectflow.model_manifest import prepare_model
from affectflow.rerun import model_pins_for

joblog.setup(snakemake.log[0])
name = snakemake.wildcards.model
prepare_model(
    name,
    snakemake.config["models_dir"],
    pins=model_pins_for(name, snakemake.config["model_pins"]),
    standin=name in snakemake.config["features"]["standins"],
    key=snakemake.params.key,
).save(snakemake.output[0])
