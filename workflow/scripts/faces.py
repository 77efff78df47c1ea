from affectflow import joblog
from affectflow.faces import run_faces_stage
from affectflow.media import accepted_units
from affectflow.units import Unit

joblog.setup(snakemake.log[0])
run_faces_stage(
    accepted_units(snakemake.input.media, [Unit(**u) for u in snakemake.params.units]),
    snakemake.output[0],
    dict(snakemake.params.cfg),
    on_bad_video=snakemake.params.on_bad_video,
    models_dir=snakemake.params.models_dir,
    model_pins=dict(snakemake.params.model_pins),
)
