from affectflow import joblog
from affectflow.media import run_media_stage
from affectflow.units import Unit

joblog.setup(snakemake.log[0])
run_media_stage(
    [Unit(**u) for u in snakemake.params.units],
    snakemake.output[0],
    dict(snakemake.params.cfg),
    on_bad_video=snakemake.params.on_bad_video,
)
