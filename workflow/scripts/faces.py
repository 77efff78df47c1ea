from affectflow.core import joblog
from affectflow.data.units import Unit
from affectflow.stages.faces import FacesOptions, run_faces_stage

joblog.setup(snakemake.log[0])
run_faces_stage(
    [Unit(**u) for u in snakemake.params.units],
    snakemake.output[0],
    FacesOptions.from_config(snakemake.config),
    models_dir=snakemake.config["models_dir"],
    model_pins=snakemake.config["model_pins"],
    media_shard=snakemake.input.media,
    key=snakemake.params.key,
)
