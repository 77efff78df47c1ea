# Every script: options from snakemake.config through the stage's options class,
# the rerun key from params.key (checked by the stage, written into provenance).
from affectflow.core import joblog
from affectflow.data.units import Unit
from affectflow.stages.media import MediaOptions, run_media_stage

joblog.setup(snakemake.log[0])
run_media_stage(
    [Unit(**u) for u in snakemake.params.units],
    snakemake.output[0],
    MediaOptions.from_config(snakemake.config),
    key=snakemake.params.key,
)
