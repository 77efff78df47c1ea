from affectflow.core import joblog
from affectflow.stages.problems import ProblemsOptions, collect_problems

joblog.setup(snakemake.log[0])
collect_problems([*snakemake.input.media, *snakemake.input.faces], snakemake.output[0],
                 ProblemsOptions.from_config(snakemake.config))
