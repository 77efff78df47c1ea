# rule learn: input.f0, f1, ... (shards of each modality of the feature set, in its order), input.units,
# input.media; output.metrics (…/metrics.json; its folder is out_dir); params.key.
from pathlib import Path

from affectflow.core import joblog
from affectflow.stages.learn import LearnOptions, run_learn

joblog.setup(snakemake.log[0])
task = snakemake.wildcards.task
labels = snakemake.config["feature_sets"][snakemake.wildcards.feature_set]
run_learn(
    task,
    snakemake.input.units,
    list(snakemake.input.media),
    {label: list(snakemake.input[f"f{i}"]) for i, label in enumerate(labels)},
    Path(snakemake.output.metrics).parent,
    LearnOptions.from_config(snakemake.config, task=task, features=tuple(labels)),
    key=snakemake.params.key,
)
