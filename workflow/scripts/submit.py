from pathlib import Path

from affectflow.core import joblog
from affectflow.stages.submit import run_submit

joblog.setup(snakemake.log[0])
run_submit(
    snakemake.rule.removeprefix("submit_"),
    snakemake.input.units,
    Path(snakemake.input.fusion) / "test_predictions.h5",
    list(snakemake.input.media),
    snakemake.output[0],
    template=snakemake.input.template or None,
)
