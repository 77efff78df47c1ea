# rule submit: input.units, input.fused (test_predictions.h5), input.media (list); output[0] (a file for
# expr/emi, a directory() for ah); params.task.
from affectflow import joblog
from affectflow.submit_stage import run_submit

joblog.setup(snakemake.log[0])
run_submit(snakemake.params.task, snakemake.input.units, snakemake.input.fused, list(snakemake.input.media),
           snakemake.output[0])
